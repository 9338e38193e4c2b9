"""bml_cli"""

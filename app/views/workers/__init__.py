"""The Workers page: its script (page.py) and, beside it, its data logic and chart code."""

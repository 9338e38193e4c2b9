"""The Methods page: the strategy catalogue from the specs (page.py, and its data in data.py)."""

"""The Study page (a tuning study, issue 23): its script (page.py) and its data and figures (data.py)."""

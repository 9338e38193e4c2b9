"""The dashboard pages, one folder each: page.py (the Streamlit script), data.py (its data logic, no Streamlit), and its chart code."""

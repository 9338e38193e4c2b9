"""The dashboard: a Streamlit app (`app/main.py`, pages in `app/views/`) that reads the
store through `db`'s query API and launches and controls runs through `services.actions`.
Never imports torch."""

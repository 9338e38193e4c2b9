"""Report (placeholder until the report module lands)."""

import streamlit as st

st.title("Report")

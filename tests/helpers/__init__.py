"""What tests share, imported instead of another suite's conftest: `cluster` (store, broker,
`bml worker` processes), `browser` (Chromium, served apps, Streamlit widgets, Plotly points),
`net` (free ports)."""

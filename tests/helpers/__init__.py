"""What tests share, imported instead of another suite's conftest: `cluster` (store, broker,
`bml worker` processes), `browser` (Chromium, served apps, Streamlit widgets, Plotly points),
`net` (free ports), `configs` (the small synthetic run configs of the trainer and strategy
tests), `fixtures` (the SQLite store and embedded-broker fixtures that conftests import)."""

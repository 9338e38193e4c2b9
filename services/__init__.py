"""The service layer: what the dashboard (app/), the CLI (bml_cli/) and the benchmarks (bench/) share.

`services.actions` is the actions API (submit, cancel, delete, rerun, permissions, audit),
`services.report` builds the statistical report document, and `services.processes` starts
the dashboard process. It sits above `bml_core`, `db` and `worker` and below every front
end; nothing here imports `app`, `bml_cli` or `bench` (tests/test_layers.py checks it)."""

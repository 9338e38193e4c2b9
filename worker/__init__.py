"""The Celery worker side of BML Studio: the app configured from the environment, the
supervisor task `bml.execute_run(run_id)`, the run process, the reaper, and the client the
CLI and the dashboard use. Torch is only ever imported by the run process (a child started
with subprocess)."""

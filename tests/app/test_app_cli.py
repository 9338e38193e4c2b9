"""`bml dashboard`: refuses an un-migrated store with the fix, serves the app on the port
asked (`GET /_stcore/health` answers `ok`) and stops its server process on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from sqlalchemy import Engine

from services.processes import dashboard_command, dashboard_url, is_healthy, wait_until_healthy
from tests.helpers.net import free_port


def test_unmigrated_store_is_refused(bml_exe: str, _isolated_home: Path) -> None:
    out = subprocess.run(
        [bml_exe, "dashboard", "--port", str(free_port())], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1
    assert "not migrated" in out.stderr and "bml db upgrade" in out.stderr


def test_serves_the_app_and_stops_on_sigterm(bml_exe: str, engine: Engine) -> None:
    port = free_port()
    proc = subprocess.Popen([bml_exe, "dashboard", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        url = dashboard_url(port)
        assert wait_until_healthy(url, timeout_s=60, alive=proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().startswith(f"BML Studio dashboard: {url}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        assert not is_healthy(url, timeout_s=1)  # the Streamlit child is gone too
    finally:
        proc.kill()


def test_command_binds_the_contract_defaults() -> None:
    argv = dashboard_command()
    assert argv[argv.index("--server.port") + 1] == "8501"
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--browser.gatherUsageStats") + 1] == "false"
    assert dashboard_url(8501, "0.0.0.0") == "http://127.0.0.1:8501"

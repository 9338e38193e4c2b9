"""BML_ALERT_WEBHOOK is checked once at start (http/https only, one clear line) and a
delivery failure becomes a warning event of the run, which /live lists (issue 25)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

import db
from bml_core.alerts.webhook import WebhookSink, WebhookUrlError, check_webhook_url, webhook_sinks
from bml_core.config import validate_config

BAD = ["file:///etc/passwd", "gopher://example.com/x", "notaurl", "http://", "ftp://host/x"]


def test_only_http_and_https_urls_are_accepted() -> None:
    assert check_webhook_url(" https://hooks.example.com/bml ") == "https://hooks.example.com/bml"
    assert check_webhook_url("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"
    for url in BAD:
        with pytest.raises(WebhookUrlError, match="BML_ALERT_WEBHOOK=.*is not an http\\(s\\) URL"):
            check_webhook_url(url)


def test_an_invalid_url_makes_no_sink_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setenv("BML_ALERT_WEBHOOK", "gopher://example.com/x")
    assert webhook_sinks({"name": "r"}, on_failure=said.append) == []
    assert said and "alerts are not sent" in said[0]


@pytest.mark.parametrize("url", ["file:///tmp/x", "notaurl"])
def test_train_and_worker_refuse_a_bad_url_at_start(bml_exe: str, url: str) -> None:
    env = {**os.environ, "BML_ALERT_WEBHOOK": url}
    for args in (["train", "--no-progress"], ["worker", "--cpu"]):
        r = subprocess.run([bml_exe, *args], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.strip() == (
            f"error: BML_ALERT_WEBHOOK={url!r} is not an http(s) URL;"
            " set it like https://hooks.example.com/bml or unset it"
        )


def _dead_url() -> str:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def test_a_delivery_failure_is_a_warning_event_of_the_run(_isolated_home: Path) -> None:
    from worker.run_process import _event_on

    engine = db.make_engine()
    db.upgrade(engine)
    run_id = db.create_run(engine, validate_config({"name": "r"}))
    url = _dead_url()
    sink = WebhookSink(
        url, run={"id": run_id}, retries=1, backoff_s=0.01, on_failure=_event_on(engine, run_id)
    )
    sink.on_alert({"key": "overfitting", "message": "m"})
    sink.close()
    deadline = time.monotonic() + 10
    while not db.run_events(engine, run_id) and time.monotonic() < deadline:
        time.sleep(0.05)
    [event] = db.run_events(engine, run_id)
    assert event.level == "warning" and sink.failed == 1
    assert f"alert overfitting not delivered to the webhook {url} after 2 tries" in event.message

"""BML_ALERT_WEBHOOK: a local HTTP server on 127.0.0.1 receives each alert as JSON; a
server that fails is retried with backoff; a dead URL never blocks or raises (the
failure is logged and counted)."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bml_core.alerts.webhook import WebhookSink, webhook_sinks

ALERT = {
    "key": "dominance:visual:12",
    "detector": "dominance",
    "severity": "warning",
    "modality": "visual",
    "step": 12,
    "evidence": {"rho": 2.4, "bad": float("nan")},
    "advice": {"strategies": []},
    "message": "m",
}


class _Server:
    def __init__(self, fail_first: int = 0):
        self.received: list[dict[str, Any]] = []
        self.fail_left = fail_first
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                outer.calls += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_left > 0:
                    outer.fail_left -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                assert self.headers["Content-Type"] == "application/json"
                outer.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.httpd.shutdown()


def test_local_server_receives_the_alert_json(server: _Server) -> None:
    sink = WebhookSink(server.url, run={"name": "r", "id": 7})
    sink.on_alert(ALERT)
    sink.close()
    (got,) = server.received
    assert got["key"] == "dominance:visual:12" and got["modality"] == "visual"
    assert got["evidence"] == {"rho": 2.4, "bad": "nan"}  # strict JSON: non-finite as strings
    assert got["run"] == {"name": "r", "id": 7} and sink.sent == 1


def test_failures_are_retried_with_backoff() -> None:
    s = _Server(fail_first=2)
    try:
        sink = WebhookSink(s.url, retries=3, backoff_s=0.01)
        sink.on_alert(ALERT)
        sink.close()
        assert s.calls == 3 and len(s.received) == 1 and sink.failed == 0
    finally:
        s.httpd.shutdown()


def test_a_dead_url_never_blocks_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/x", retries=2, backoff_s=0.01, timeout_s=0.5)
    t0 = time.perf_counter()
    for _ in range(50):
        sink.on_alert(ALERT)
    assert time.perf_counter() - t0 < 0.05  # the training thread only queues
    with caplog.at_level(logging.WARNING, logger="bml.alerts.webhook"):
        sink.close()
    assert sink.failed == 50 and sink.sent == 0
    assert "failed after 3 tries" in caplog.text


def test_env_switch(monkeypatch: pytest.MonkeyPatch, server: _Server) -> None:
    monkeypatch.delenv("BML_ALERT_WEBHOOK", raising=False)
    assert webhook_sinks() == []
    monkeypatch.setenv("BML_ALERT_WEBHOOK", server.url)
    (sink,) = webhook_sinks({"name": "x"})
    assert isinstance(sink, WebhookSink) and sink.url == server.url
    sink.close()

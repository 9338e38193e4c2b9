"""WebhookSink: posts each alert as JSON to `BML_ALERT_WEBHOOK` (a URL). The training
thread only appends to a bounded queue; a daemon thread posts with a timeout and retries
with exponential backoff; failures are logged, never raised, and never block training
(when the queue is full the alert is dropped and counted)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from bml_core.finitejson import finite_json
from bml_core.sinks import MetricSink

log = logging.getLogger("bml.alerts.webhook")
ENV = "BML_ALERT_WEBHOOK"


class WebhookUrlError(ValueError):
    """BML_ALERT_WEBHOOK is not an http(s) URL; the message says what to write."""


def check_webhook_url(url: str) -> str:
    """`url` when it is http:// or https:// with a host; WebhookUrlError naming the fix
    otherwise (`file://`, `gopher://`, `notaurl`). Checked once when a process starts."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
        shown = url if len(url) <= 80 else url[:77] + "..."
        raise WebhookUrlError(
            f"{ENV}={shown!r} is not an http(s) URL; set it like https://hooks.example.com/bml or unset it"
        )
    return url.strip()


class WebhookSink(MetricSink):
    """url: where alerts are POSTed (Content-Type application/json). `run` is added to each
    payload (the run name, and its id in the store when known)."""

    def __init__(
        self,
        url: str,
        *,
        run: dict[str, Any] | None = None,
        timeout_s: float = 5.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_queued: int = 1000,
        close_timeout_s: float = 10.0,
        on_failure: Callable[[str], None] | None = None,
    ):
        self.url = url
        self.on_failure = on_failure  # told each alert that could not be delivered (e.g. -> /live)
        self.run = dict(run or {})
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.close_timeout_s = close_timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queued)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="bml-alert-webhook", daemon=True)
        self._thread.start()

    def on_start(self, info: dict[str, Any]) -> None:
        self.run.setdefault("name", info.get("name"))

    def on_alert(self, alert: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait({**finite_json(alert, "string"), "run": self.run})
        except queue.Full:
            self.dropped += 1
            log.warning("alert webhook queue full: alert %s dropped", alert.get("key"))

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        req = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:  # noqa: S310 - the user's URL
            resp.read()

    def _loop(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            delay = self.backoff_s
            for attempt in range(self.retries + 1):
                try:
                    self._post(payload)
                    self.sent += 1
                    break
                except Exception as exc:  # noqa: BLE001 - logged, never raised into training
                    if attempt == self.retries:
                        self.failed += 1
                        log.warning(
                            "alert webhook %s failed after %d tries: %s: %s",
                            self.url,
                            attempt + 1,
                            type(exc).__name__,
                            exc,
                        )
                        if self.on_failure is not None:
                            with contextlib.suppress(Exception):  # never raised into training
                                self.on_failure(
                                    f"alert {payload.get('key', '?')} not delivered to the webhook "
                                    f"{self.url} after {attempt + 1} tries: {type(exc).__name__}: {exc}"
                                )
                    else:
                        time.sleep(delay)
                        delay *= 2

    def close(self) -> None:
        """Give queued alerts up to close_timeout_s to go out; never longer."""
        with contextlib.suppress(queue.Full):  # full: the daemon thread is abandoned after the join
            self._queue.put_nowait(None)
        self._thread.join(self.close_timeout_s)


def webhook_sinks(
    run: dict[str, Any] | None = None, on_failure: Callable[[str], None] | None = None
) -> list[MetricSink]:
    """[WebhookSink] when BML_ALERT_WEBHOOK is set, else []. An invalid URL (refused when
    the process started, see check_webhook_url) is logged once here and sends nothing."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        return []
    try:
        check_webhook_url(url)
    except WebhookUrlError as exc:
        log.error("%s", exc)
        if on_failure is not None:
            with contextlib.suppress(Exception):
                on_failure(f"alerts are not sent: {exc}")
        return []
    return [WebhookSink(url, run=run, on_failure=on_failure)]


def webhook_env_error() -> str | None:
    """The message when BML_ALERT_WEBHOOK is set to something that is not an http(s) URL."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        return None
    try:
        check_webhook_url(url)
    except WebhookUrlError as exc:
        return str(exc)
    return None

"""The Celery app, configured only from the environment (worker.settings): JSON only
(pickle refused everywhere), early acknowledgement (a long run must not be redelivered by a
visibility timeout: the reaper and the run row handle recovery) and no prefetch: a worker busy
with a run holds no second message (it would wait behind the first while another worker is
idle, and die with the worker). Redis: Celery's `worker_disable_prefetch`; the embedded broker:
its own QoS (worker.embedded_broker)."""

from __future__ import annotations

import os

# Celery names its processes with setproctitle (a dependency, for worker.spare); without this
# the title overwrites /proc/PID/environ, where operators (and tests) read a worker's settings
os.environ.setdefault("SPT_NOENV", "1")

from celery import Celery  # noqa: E402

import worker.embedded_broker  # noqa: F401  (registers the embedded transport)
from worker.settings import QUEUE_NAME, broker_url, is_embedded

BROKER_RETRY_POLICY = {"max_retries": 3, "interval_start": 0.0, "interval_step": 0.5, "interval_max": 2.0}


def make_app(url: str | None = None) -> Celery:
    url = url or broker_url()
    app = Celery("bml", broker=url, include=["worker.tasks"])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        result_accept_content=["json"],
        task_ignore_result=True,
        result_backend=None,
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=url.startswith(("redis://", "rediss://")),
        task_default_queue=QUEUE_NAME,
        task_queues=None,
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_publish_retry_policy=BROKER_RETRY_POLICY,
        broker_transport_options=transport_options(url),
    )
    return app


def transport_options(url: str) -> dict[str, object]:
    if is_embedded(url):
        return {"polling_interval": 0.1}
    if url.startswith(("redis://", "rediss://")):
        # several deployments (or test sessions) can share one Redis: keys live under a prefix
        return {"global_keyprefix": os.environ.get("BML_BROKER_PREFIX", "bml:")}
    return {}


app = make_app()

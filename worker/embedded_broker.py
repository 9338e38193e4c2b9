"""The embedded broker: kombu's SQLAlchemy transport on a SQLite file, so a single machine
needs no broker server. Two fixes over the stock transport: `polling_interval` is honoured
(the stock channel passes every transport option to create_engine, which refuses it), and
SQLite runs in WAL mode with a busy timeout, so the dashboard, the CLI and several worker
processes can share the file. And a worker takes no message while it holds one it has not
finished: with early acknowledgement a prefetched run would wait behind the running one
while another worker sits idle, and be lost with the worker if it is killed (what Celery's
`worker_disable_prefetch` does for Redis, which it refuses for other transports)."""

from __future__ import annotations

from typing import Any

from celery.worker import state as worker_state
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine, event

from worker.settings import EMBEDDED_SCHEME

POLLING_INTERVAL_S = 0.1
SQLITE_BUSY_TIMEOUT_S = 30.0
_KOMBU_ONLY_OPTIONS = {
    "queue_tablename",
    "message_tablename",
    "callback",
    "errback",
    "max_retries",
    "interval_start",
    "interval_step",
    "interval_max",
    "retry_errors",
    "polling_interval",
}


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cur.close()


class OneAtATimeQoS(virtual.QoS):
    """Consume only when this worker process holds no reserved request (a running one counts
    until it is done); every bml worker runs one run at a time (`-c 1`)."""

    def can_consume(self) -> bool:
        if worker_state.reserved_requests:
            return False
        return bool(super().can_consume())


class Channel(kombu_sqla.Channel):
    QoS = OneAtATimeQoS

    def _engine_from_config(self) -> Any:
        conninfo = self.connection.client
        options = {k: v for k, v in conninfo.transport_options.items() if k not in _KOMBU_ONLY_OPTIONS}
        if conninfo.hostname.startswith("sqlite"):
            options.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S})
            engine = create_engine(conninfo.hostname, **options)
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(conninfo.hostname, **options)


class Transport(kombu_sqla.Transport):
    Channel = Channel
    polling_interval = POLLING_INTERVAL_S


TRANSPORT_ALIASES[EMBEDDED_SCHEME] = "worker.embedded_broker:Transport"


def prepare(url: str, queue: str) -> None:
    """Create the broker's tables and queue once, before several workers start at the same
    moment (each would otherwise race to create them in the same SQLite file)."""
    from kombu import Connection

    with Connection(url, transport_options={"polling_interval": POLLING_INTERVAL_S}) as conn:
        conn.default_channel.queue_declare(queue=queue)

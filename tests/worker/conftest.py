"""Fixtures of the worker suite: a migrated store in a temporary BML_HOME with a broker (the
embedded SQLite one, the machine's real Redis under a per-session key prefix, or a test-owned
redis-server that a test may stop). The parts they are made of live in tests/helpers/cluster.py."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.cluster import (
    REDIS_HOST,
    REDIS_PORT,
    Cluster,
    OwnedRedis,
    ensure_machine_redis,
    migrated_home,
    redis_up,
)
from tests.helpers.fixtures import embedded_cluster  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"bmltest-{os.getpid()}-{secrets.token_hex(3)}:"
    yield prefix
    if redis_up(REDIS_PORT):  # leave the machine's Redis as we found it
        import redis

        conn = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
        keys = list(conn.scan_iter(match=prefix + "*", count=1000))
        if keys:
            conn.delete(*keys)


@pytest.fixture(params=["embedded", "redis"])
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_prefix: str
) -> Iterator[Cluster]:
    """A store plus a broker: the embedded one, or the machine's Redis (own key prefix)."""
    if request.param == "redis":
        ensure_machine_redis()
        broker = {"BML_BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0", "BML_BROKER_PREFIX": redis_prefix}
    else:
        broker = {"BML_BROKER_URL": ""}
    c = migrated_home(tmp_path, broker)
    c.apply(monkeypatch)
    yield c
    c.stop_all()


@pytest.fixture
def owned_redis_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Cluster, OwnedRedis]]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    redis = OwnedRedis(tmp_path / "redis")
    redis.start()
    c = migrated_home(tmp_path, {"BML_BROKER_URL": redis.url, "BML_BROKER_PREFIX": "bml:"})
    c.apply(monkeypatch)
    yield c, redis
    c.stop_all()
    redis.stop()

"""Permissions enforced in services.actions, called as each role (viewer, operator, admin),
the CLI acting as BML_USER or the local admin, the audit trail of actions, and `bml runs
--json` showing the owner but never a password or hash."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import db
from db.accounts import Actor
from services import actions as client
from tests.helpers.cluster import BML, SMALL_RUN, Cluster

ADMIN = Actor("ada", "admin")
OPERATOR = Actor("otto", "operator")
OTHER = Actor("olga", "operator")
VIEWER = Actor("vic", "viewer")


def test_client_actions_as_each_role(embedded_cluster: Cluster) -> None:
    eng = db.make_engine()
    with pytest.raises(db.PermissionDenied, match=r"'vic' \(viewer\) may not launch runs"):
        client.submit(SMALL_RUN, engine=eng, actor=VIEWER)
    assert db.list_runs(eng).total == 0
    (mine,) = client.submit(SMALL_RUN, engine=eng, actor=OPERATOR)
    (theirs,) = client.submit(SMALL_RUN, engine=eng, actor=OTHER)
    assert db.get_run(eng, mine).owner == "otto" and db.get_run(eng, theirs).owner == "olga"
    _, sweep_ids = client.submit_sweep(SMALL_RUN, {"seed": [1, 2]}, [], name="sw", engine=eng, actor=OPERATOR)
    assert {db.get_run(eng, i).owner for i in sweep_ids} == {"otto"}
    with pytest.raises(db.PermissionDenied):
        client.submit_sweep(SMALL_RUN, {"seed": [1]}, [], name="x", engine=eng, actor=VIEWER)

    for action in (client.cancel, client.retry, client.delete):
        with pytest.raises(db.PermissionDenied):
            action(mine, engine=eng, actor=VIEWER)
    with pytest.raises(db.PermissionDenied, match="owned by 'olga'"):
        client.cancel(theirs, engine=eng, actor=OPERATOR)
    with pytest.raises(db.PermissionDenied, match="owned by 'olga'"):
        client.retry(theirs, engine=eng, actor=OPERATOR)
    assert client.cancel(mine, engine=eng, actor=OPERATOR) == "cancelled"
    clone = client.retry(mine, engine=eng, actor=OPERATOR)
    assert db.get_run(eng, clone).owner == "otto"
    with pytest.raises(db.PermissionDenied, match="delete needs the admin role"):
        client.delete(mine, engine=eng, actor=OPERATOR)
    assert client.cancel(theirs, engine=eng, actor=ADMIN) == "cancelled"
    clone2 = client.retry(theirs, engine=eng, actor=ADMIN)
    assert db.get_run(eng, clone2).owner == "ada"
    client.delete(theirs, engine=eng, actor=ADMIN)
    trail = [(a.actor, a.action, a.run_id) for a in db.audit_events(eng)][::-1]
    assert trail == [
        ("otto", "cancel", mine),
        ("otto", "retry", mine),
        ("ada", "cancel", theirs),
        ("ada", "retry", theirs),
        ("ada", "delete", theirs),
    ]


def test_cli_acts_as_bml_user_or_the_local_admin(embedded_cluster: Cluster, tmp_path: Path) -> None:
    eng = db.make_engine()
    env = embedded_cluster.env
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps(SMALL_RUN))

    def bml(
        *args: str, user: str | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        e = {k: v for k, v in {**os.environ, **env}.items() if k != "BML_USER"}
        if user:
            e["BML_USER"] = user
        return subprocess.run([BML, *args], env=e, input=stdin, capture_output=True, text=True, timeout=120)

    out = bml("user", "add", "ada", "--role", "admin", "--password-stdin", stdin="correct horse\n")
    assert out.returncode == 0, out.stderr
    assert (
        bml("user", "add", "vic", "--role", "viewer", "--password-stdin", stdin="battery staple\n").returncode
        == 0
    )
    refused = bml("user", "add", "eve", "--role", "admin", "--password-stdin", user="vic", stdin="12345678\n")
    assert refused.returncode == 2 and "needs the admin role" in refused.stderr
    assert bml("user", "set-role", "vic", "operator", user="ada").returncode == 0
    listed = bml("user", "list", "--json")
    assert [(u["name"], u["role"]) for u in json.loads(listed.stdout)] == [
        ("ada", "admin"),
        ("vic", "operator"),
    ]

    sub = bml("submit", str(cfg), user="vic")
    assert sub.returncode == 0, sub.stderr
    run_id = int(sub.stdout.split()[0])
    local = bml("submit", str(cfg))  # no BML_USER: the local admin (the OS user)
    local_id = int(local.stdout.split()[0])
    assert db.get_run(eng, local_id).owner == db.local_admin().name
    denied = bml("cancel", str(local_id), user="vic")
    assert denied.returncode == 2 and "only their own runs" in denied.stderr
    assert bml("cancel", str(run_id), user="vic").returncode == 0
    unknown = bml("submit", str(cfg), user="nobody")
    assert unknown.returncode == 2 and "no user 'nobody'" in unknown.stderr

    runs = bml("runs", "--json")
    owners = {r["id"]: r["owner"] for r in json.loads(runs.stdout)}
    assert owners == {run_id: "vic", local_id: db.local_admin().name}
    assert bml("runs", "--owner", "vic", "--json").stdout.count('"id"') == 1
    everything = runs.stdout + listed.stdout + out.stdout + out.stderr + bml("user", "list").stdout
    for secret in ("correct horse", "battery staple", "argon2"):
        assert secret not in everything
    assert bml("user", "remove", "vic", user="ada").returncode == 0

"""Accounts in the store: migration 0002 keeps the runs of a database made at 0001; users
and roles; permissions enforced by db itself (called as each role); the audit trail;
login with throttling; never a password or hash in what the store hands out."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

import db
from db import accounts
from db.accounts import Actor
from db.models import utcnow

ADMIN = Actor("ada", "admin")
OPERATOR = Actor("otto", "operator")
OTHER_OPERATOR = Actor("olga", "operator")
VIEWER = Actor("vic", "viewer")
CFG = {"name": "r", "group": "g", "train": {"epochs": 1}}


def test_upgrade_from_0001_keeps_existing_runs(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    assert db.upgrade(engine, "0001_initial") == "0001_initial"
    with engine.begin() as conn:  # a run as the previous code stored it
        conn.execute(
            text(
                "INSERT INTO runs (id, name, group_name, status, config, strategy, dataset, seed, attempt,"
                " max_attempts, created_at, progress, step, cancel_requested, dropped_points, summary)"
                " VALUES (7, 'old', 'g0', 'succeeded', :cfg, 'joint', 'synthetic', 3, 1, 3,"
                " '2026-11-01 10:00:00', 1.0, 42, 0, 0, :summary)"
            ),
            {"cfg": json.dumps({"name": "old", "seed": 3}), "summary": json.dumps({"test": {"acc": 0.5}})},
        )
        conn.execute(
            text("INSERT INTO events (run_id, time, level, message) VALUES (7, '2026-11-01', 'info', 'hi')")
        )
    with pytest.raises(db.SchemaError, match="bml db upgrade"):
        db.check_schema(engine)
    assert db.upgrade(engine, "0002_accounts") == "0002_accounts"
    # 0003_alerts and 0004_ids (issue 14: ids never reused) keep them too
    assert db.upgrade(engine) == db.head_revision() == "0005_retry_of"
    db.check_schema(engine)
    run = db.get_run(engine, 7)
    assert (run.name, run.group, run.status, run.seed, run.step) == ("old", "g0", "succeeded", 3, 42)
    assert run.summary == {"test": {"acc": 0.5}} and run.config == {"name": "old", "seed": 3}
    assert run.owner is None and run.environment is None and run.rerun_of is None
    assert [e.message for e in db.run_events(engine, 7)] == ["hi"]
    new_id = db.create_run(engine, CFG, owner="ada")
    assert new_id == 8 and db.list_runs(engine, owner="ada").total == 1
    engine.dispose()


def test_permission_table() -> None:
    cases = {
        # (role, action, owner is the actor): allowed
        ("viewer", "read", False): True,
        ("viewer", "launch", False): False,
        ("viewer", "cancel", True): False,
        ("operator", "launch", False): True,
        ("operator", "cancel", True): True,
        ("operator", "cancel", False): False,
        ("operator", "retry", True): True,
        ("operator", "retry", False): False,
        ("operator", "delete", True): False,
        ("operator", "users", False): False,
        ("admin", "cancel", False): True,
        ("admin", "delete", False): True,
        ("admin", "users", False): True,
    }
    for (role, action, own), expected in cases.items():
        actor = Actor("me", role)
        assert db.allowed(actor, action, "me" if own else "someone") is expected, (role, action, own)
    # a run from before accounts (owner None) is an admin's business
    assert not db.allowed(OPERATOR, "cancel", None)


def test_cancel_and_delete_enforced_in_db_as_each_role(engine: Engine) -> None:
    own = db.create_run(engine, CFG, owner=OPERATOR.name)
    other = db.create_run(engine, CFG, owner=OTHER_OPERATOR.name)
    with pytest.raises(db.PermissionDenied, match=r"'vic' \(viewer\) may not cancel run"):
        db.request_cancel(engine, own, actor=VIEWER)
    with pytest.raises(db.PermissionDenied, match="only their own runs; this one is owned by 'olga'"):
        db.request_cancel(engine, other, actor=OPERATOR)
    assert db.get_run(engine, other).status == "queued"  # nothing happened
    assert db.request_cancel(engine, own, actor=OPERATOR) == "cancelled"
    assert db.request_cancel(engine, other, actor=ADMIN) == "cancelled"
    with pytest.raises(db.PermissionDenied, match="delete needs the admin role"):
        db.delete_run(engine, own, actor=OPERATOR)
    with pytest.raises(db.PermissionDenied):
        db.delete_run(engine, own, actor=VIEWER)
    db.delete_run(engine, own, actor=ADMIN)
    with pytest.raises(db.RunNotFound):
        db.get_run(engine, own)
    with pytest.raises(db.RunNotFound):
        db.request_cancel(engine, 999, actor=ADMIN)
    trail = [(a.actor, a.action, a.run_id) for a in db.audit_events(engine)]
    # newest first; refused attempts leave no row (their transaction rolled back)
    assert trail == [("ada", "delete", own), ("ada", "cancel", other), ("otto", "cancel", own)]


def test_users_add_list_set_role_remove_audited(engine: Engine) -> None:
    accounts.add_user(engine, "ada", "admin", "correct horse", actor=Actor("root", "admin"))
    accounts.add_user(engine, "vic", "viewer", "battery staple", actor=ADMIN)
    with pytest.raises(db.PermissionDenied, match="users needs the admin role"):
        accounts.add_user(engine, "eve", "admin", "12345678", actor=VIEWER)
    with pytest.raises(db.PermissionDenied):
        accounts.set_role(engine, "vic", "admin", actor=OPERATOR)
    with pytest.raises(db.UserError, match="role 'boss' refused"):
        accounts.add_user(engine, "bob", "boss", "12345678", actor=ADMIN)
    with pytest.raises(db.UserError, match="at least 8 characters"):
        accounts.add_user(engine, "bob", "viewer", "short", actor=ADMIN)
    with pytest.raises(db.UserError, match="user name 'a b' refused"):
        accounts.add_user(engine, "a b", "viewer", "12345678", actor=ADMIN)
    with pytest.raises(db.UserError, match="exists already"):
        accounts.add_user(engine, "vic", "viewer", "12345678", actor=ADMIN)
    accounts.set_role(engine, "vic", "operator", actor=ADMIN)
    assert [(u.name, u.role) for u in accounts.list_users(engine)] == [("ada", "admin"), ("vic", "operator")]
    with pytest.raises(db.UserError, match="last admin"):
        accounts.set_role(engine, "ada", "viewer", actor=ADMIN)
    with pytest.raises(db.UserError, match="last admin"):
        accounts.remove_user(engine, "ada", actor=ADMIN)
    accounts.remove_user(engine, "vic", actor=ADMIN)
    assert accounts.get_user(engine, "vic") is None
    with pytest.raises(db.PermissionDenied, match="no user 'vic'"):
        db.resolve_actor(engine, "vic")
    trail = [(a.actor, a.action, a.target_user, a.detail) for a in db.audit_events(engine)][::-1]
    assert trail == [
        ("root", "user-add", "ada", "role admin"),
        ("ada", "user-add", "vic", "role viewer"),
        ("ada", "user-set-role", "vic", "viewer -> operator"),
        ("ada", "user-remove", "vic", "was operator"),
    ]


def test_no_password_or_hash_leaves_the_store(engine: Engine) -> None:
    accounts.add_user(engine, "ada", "admin", "correct horse", actor=ADMIN)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    listed = json.dumps([u.to_dict() for u in accounts.list_users(engine)])
    assert "argon2" not in listed and "correct horse" not in listed and stored not in listed
    audit = json.dumps([str(a) for a in db.audit_events(engine)])
    assert "argon2" not in audit and "correct horse" not in audit


def test_login_is_throttled_per_user_and_stored(engine: Engine) -> None:
    accounts.add_user(engine, "ada", "admin", "correct horse", actor=ADMIN)
    accounts.add_user(engine, "vic", "viewer", "battery staple", actor=ADMIN)
    assert db.authenticate(engine, "ada", "correct horse") == Actor("ada", "admin")
    with pytest.raises(db.LoginRefused, match="wrong user name or password"):
        db.authenticate(engine, "nobody", "correct horse")
    now = utcnow()
    for _ in range(accounts.free_failures - 1):
        with pytest.raises(db.LoginRefused) as exc:
            db.authenticate(engine, "ada", "wrong", now=now)
        assert exc.value.retry_after_s == 0
    with pytest.raises(db.LoginRefused, match="too many failed logins") as exc:
        db.authenticate(engine, "ada", "wrong", now=now)
    assert exc.value.retry_after_s == accounts.lock_base_s
    # while locked even the right password is refused; other users are not affected
    with pytest.raises(db.LoginRefused, match="try again in 30 s"):
        db.authenticate(engine, "ada", "correct horse", now=now)
    assert db.authenticate(engine, "vic", "battery staple", now=now).role == "viewer"
    later = now + timedelta(seconds=accounts.lock_base_s + 1)
    with pytest.raises(db.LoginRefused) as exc:  # the next failure locks twice as long
        db.authenticate(engine, "ada", "wrong", now=later)
    assert exc.value.retry_after_s == 2 * accounts.lock_base_s
    much_later = later + timedelta(seconds=2 * accounts.lock_base_s + 1)
    assert db.authenticate(engine, "ada", "correct horse", now=much_later).name == "ada"
    assert accounts.lock_seconds(100) == accounts.lock_max_s


def test_environment_diff_names_what_differs(engine: Engine) -> None:
    a = db.create_run(engine, CFG)
    b = db.create_run(engine, CFG)
    c = db.create_run(engine, CFG)  # recorded nothing
    env = {
        "python": "3.11.9",
        "packages": {"torch": "2.13.0", "numpy": "2.1.0"},
        "gpu": None,
        "executable": "/x/python",
        "data": [{"path": "/d/f.npz", "size": 3, "sha256": "1" * 64}],
    }
    db.record_environment(engine, a, env)
    other = json.loads(json.dumps(env))
    other["packages"]["torch"] = "2.14.0"
    other["executable"] = "/y/python"
    other["data"][0]["sha256"] = "2" * 64
    db.record_environment(engine, b, other)
    assert db.get_run(engine, a).environment == env
    assert db.environment_diff(engine, [a, b, c]) == {
        "data./d/f.npz": {a: "1" * 64, b: "2" * 64},
        "packages.torch": {a: "2.13.0", b: "2.14.0"},
    }
    assert db.environment_diff(engine, [a, c]) == {}
    with pytest.raises(db.RunNotFound):
        db.environment_diff(engine, [a, 999])

"""Accounts, roles, permissions and the audit trail.

Roles: `viewer` reads everything; `operator` also launches and reruns runs, and cancels /
retries its own; `admin` does everything, including other people's runs, deleting runs and
managing users. An `Actor` (name, role) is who performs an action: the logged-in user in
the dashboard, `BML_USER` (or the local admin) on the command line. `authorize` is the one
place that decides; `db.runs` and `services.actions` call it where the action happens, so a
hidden button is never the only guard.

Passwords are hashed with Argon2id (argon2-cffi); neither a password nor its hash ever
leaves this module (`UserInfo` has no hash field). Repeated wrong passwords lock the
account for a while that doubles with each further failure (stored in the row, so every
dashboard process sees it)."""

from __future__ import annotations

import getpass
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from db.engine import write_tx
from db.errors import StoreError
from db.models import MAX_NAME_LENGTH, AuditEvent, User, utcnow

ROLES = ("viewer", "operator", "admin")
RUN_ACTIONS = ("launch", "cancel", "retry", "rerun", "delete")
USER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$")
min_password_length = 8
free_failures = 3  # wrong passwords allowed before the account is locked
lock_base_s = 30.0  # first lock; doubles with each further failure
lock_max_s = 15 * 60.0


class PermissionDenied(StoreError, PermissionError):
    """The actor's role does not allow this action (the message says who may)."""


class LoginRefused(StoreError):
    """Wrong user name or password, or too many failures (`retry_after_s` > 0)."""

    def __init__(self, message: str, retry_after_s: float = 0.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UserError(StoreError, ValueError):
    """A user change the store refuses (unknown role, bad name, short password, ...)."""


@dataclass(frozen=True)
class Actor:
    """Who performs an action."""

    name: str
    role: str


@dataclass(frozen=True)
class UserInfo:
    """An account as listed (never its password hash)."""

    name: str
    role: str
    created_at: datetime
    has_password: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        return out


@dataclass(frozen=True)
class AuditInfo:
    id: int
    time: datetime
    actor: str
    action: str
    run_id: int | None
    target_user: str | None
    detail: str | None


def local_admin() -> Actor:
    """Who the CLI acts as when BML_USER is not set: the operating-system user, as admin."""
    try:
        name = getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry (containers)
        name = "local"
    return Actor(name=name or "local", role="admin")


# --------------------------------------------------------------------------- permissions


def allowed(actor: Actor, action: str, owner: str | None = None) -> bool:
    """Whether `actor` may do `action` (`read`, `launch`, `cancel`, `retry`, `rerun`,
    `delete`, `users`) on a run owned by `owner` (None: no run involved)."""
    if actor.role == "admin":
        return True
    if action == "read":
        return actor.role in ROLES
    if actor.role != "operator":
        return False
    if action in ("launch", "rerun"):  # a rerun is a new run of the operator's own
        return True
    if action in ("cancel", "retry"):
        return owner is not None and owner == actor.name
    return False


def authorize(actor: Actor, action: str, owner: str | None = None, what: str = "") -> None:
    """PermissionDenied with a clear message unless `allowed(actor, action, owner)`."""
    if allowed(actor, action, owner):
        return
    target = f" {what}" if what else ""
    if action in ("cancel", "retry") and actor.role == "operator":
        whose = f"owned by {owner!r}" if owner else "launched before accounts existed"
        why = f"operators may {action} only their own runs; this one is {whose}: ask an admin"
    elif action in ("launch", "cancel", "retry", "rerun"):
        why = f"{action} needs the operator or admin role"
    else:
        why = f"{action} needs the admin role"
    raise PermissionDenied(f"user {actor.name!r} ({actor.role}) may not {action}{target}: {why}")


# --------------------------------------------------------------------------- passwords


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < min_password_length:
        raise UserError(f"password refused: at least {min_password_length} characters")
    return str(_hasher().hash(password))


def _verify(hashed: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return bool(_hasher().verify(hashed or _dummy_hash(), password)) and hashed is not None
    except (VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verifying against this for unknown users keeps their answer as slow as a known user's."""
    return str(_hasher().hash("not-a-password-of-anyone"))


# --------------------------------------------------------------------------- audit


def record(
    conn: Connection,
    actor: Actor,
    action: str,
    *,
    run_id: int | None = None,
    target_user: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit row, in the caller's transaction."""
    conn.execute(
        insert(AuditEvent).values(
            time=utcnow(),
            actor=actor.name[:MAX_NAME_LENGTH],
            action=action,
            run_id=run_id,
            target_user=target_user,
            detail=detail,
        )
    )


def log_action(
    engine: Engine,
    actor: Actor,
    action: str,
    *,
    run_id: int | None = None,
    target_user: str | None = None,
    detail: str | None = None,
) -> None:
    """One audit row in its own transaction."""
    with write_tx(engine) as conn:
        record(conn, actor, action, run_id=run_id, target_user=target_user, detail=detail)


def audit_events(
    engine: Engine, *, run_id: int | None = None, actor: str | None = None, limit: int = 200
) -> list[AuditInfo]:
    """The audit trail, newest first (optionally of one run or one actor)."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if run_id is not None:
        query = query.where(AuditEvent.run_id == run_id)
    if actor is not None:
        query = query.where(AuditEvent.actor == actor)
    with engine.connect() as conn:
        rows = conn.execute(query.with_only_columns(*AuditEvent.__table__.columns)).all()
    return [
        AuditInfo(
            id=int(r.id),
            time=r.time,
            actor=r.actor,
            action=r.action,
            run_id=r.run_id,
            target_user=r.target_user,
            detail=r.detail,
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- users


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not USER_NAME_RE.match(name) or len(name) > MAX_NAME_LENGTH:
        raise UserError(
            f"user name {name!r} refused: letters, digits and . _ @ + - (starting with a letter or "
            f"digit), at most {MAX_NAME_LENGTH} characters"
        )
    return name


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r} refused: one of {', '.join(ROLES)}")
    return role


def _info(row: Any) -> UserInfo:
    return UserInfo(
        name=row.name, role=row.role, created_at=row.created_at, has_password=row.password_hash is not None
    )


def list_users(engine: Engine) -> list[UserInfo]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(User.name, User.role, User.created_at, User.password_hash).order_by(User.name)
        ).all()
    return [_info(r) for r in rows]


def get_user(engine: Engine, name: str) -> UserInfo | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(User.name, User.role, User.created_at, User.password_hash).where(User.name == name)
        ).first()
    return None if row is None else _info(row)


def user_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(User)).scalar_one())


def resolve_actor(engine: Engine, name: str) -> Actor:
    """The stored account `name` as an Actor; PermissionDenied when there is none."""
    user = get_user(engine, name)
    if user is None:
        raise PermissionDenied(f"no user {name!r} in the store (an admin adds one with `bml user add`)")
    return Actor(name=user.name, role=user.role)


def add_user(engine: Engine, name: str, role: str, password: str | None, *, actor: Actor) -> UserInfo:
    """A new account (password None: OIDC only). Admins only; audited."""
    authorize(actor, "users", what=f"add user {name!r}")
    _check_name(name)
    _check_role(role)
    hashed = None if password is None else hash_password(password)
    with write_tx(engine) as conn:
        if conn.execute(select(User.id).where(User.name == name)).first() is not None:
            raise UserError(f"user {name!r} exists already (change it with `bml user set-role`)")
        conn.execute(
            insert(User).values(
                name=name, role=role, password_hash=hashed, created_at=utcnow(), failed_logins=0
            )
        )
        record(conn, actor, "user-add", target_user=name, detail=f"role {role}")
    info = get_user(engine, name)
    assert info is not None
    return info


def _admins_left(conn: Connection, without: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(User).where(User.role == "admin", User.name != without)
        ).scalar_one()
    )


def set_role(engine: Engine, name: str, role: str, *, actor: Actor) -> None:
    authorize(actor, "users", what=f"change the role of {name!r}")
    _check_role(role)
    with write_tx(engine) as conn:
        old = conn.execute(select(User.role).where(User.name == name)).scalar_one_or_none()
        if old is None:
            raise UserError(f"no user {name!r} (see `bml user list`)")
        if old == "admin" and role != "admin" and _admins_left(conn, name) == 0:
            raise UserError(f"{name!r} is the last admin; make another admin first")
        conn.execute(update(User).where(User.name == name).values(role=role))
        record(conn, actor, "user-set-role", target_user=name, detail=f"{old} -> {role}")


def set_password(engine: Engine, name: str, password: str, *, actor: Actor) -> None:
    """Admins set anyone's password; a user may set their own. Also unlocks the account."""
    if actor.name != name:
        authorize(actor, "users", what=f"set the password of {name!r}")
    hashed = hash_password(password)
    with write_tx(engine) as conn:
        result = conn.execute(
            update(User)
            .where(User.name == name)
            .values(password_hash=hashed, failed_logins=0, locked_until=None)
        )
        if result.rowcount != 1:
            raise UserError(f"no user {name!r} (see `bml user list`)")
        record(conn, actor, "user-set-password", target_user=name)


def remove_user(engine: Engine, name: str, *, actor: Actor) -> None:
    """Remove an account (its runs keep their owner name). Admins only; audited."""
    authorize(actor, "users", what=f"remove user {name!r}")
    with write_tx(engine) as conn:
        old = conn.execute(select(User.role).where(User.name == name)).scalar_one_or_none()
        if old is None:
            raise UserError(f"no user {name!r} (see `bml user list`)")
        if old == "admin" and _admins_left(conn, name) == 0:
            raise UserError(f"{name!r} is the last admin; make another admin first")
        conn.execute(delete(User).where(User.name == name))
        record(conn, actor, "user-remove", target_user=name, detail=f"was {old}")


# --------------------------------------------------------------------------- login


def session_actor(engine: Engine, name: str, issued_at: datetime) -> Actor | None:
    """The account behind a login issued at `issued_at`, with its role as stored now; None
    when the account is gone or logged out (everywhere) since."""
    with engine.connect() as conn:
        row = conn.execute(select(User.role, User.sessions_after).where(User.name == name)).first()
    if row is None or (row.sessions_after is not None and issued_at < row.sessions_after):
        return None
    return Actor(name=name, role=row.role)


def end_sessions(engine: Engine, name: str) -> None:
    """Logout: every login cookie of `name` issued until now stops working."""
    with write_tx(engine) as conn:
        conn.execute(update(User).where(User.name == name).values(sessions_after=utcnow()))


def lock_seconds(failures: int) -> float:
    """How long the account is locked after `failures` consecutive wrong passwords."""
    if failures < free_failures:
        return 0.0
    return min(lock_max_s, lock_base_s * 2 ** (failures - free_failures))


def authenticate(engine: Engine, name: str, password: str, now: datetime | None = None) -> Actor:
    """The account's Actor when the password is right; LoginRefused otherwise. While the
    account is locked every attempt is refused (the right password too) without checking."""
    now = now or utcnow()
    with engine.connect() as conn:
        row = conn.execute(
            select(User.role, User.password_hash, User.failed_logins, User.locked_until).where(
                User.name == name
            )
        ).first()
    if row is not None and row.locked_until is not None and row.locked_until > now:
        wait = (row.locked_until - now).total_seconds()
        raise LoginRefused(f"too many failed logins for {name!r}; try again in {wait:.0f} s", wait)
    ok = _verify(row.password_hash if row is not None else None, password)
    if row is None:
        raise LoginRefused("wrong user name or password")
    with write_tx(engine) as conn:
        if ok:
            conn.execute(update(User).where(User.name == name).values(failed_logins=0, locked_until=None))
            return Actor(name=name, role=row.role)
        failures = int(row.failed_logins) + 1
        lock = lock_seconds(failures)
        conn.execute(
            update(User)
            .where(User.name == name)
            .values(failed_logins=failures, locked_until=now + timedelta(seconds=lock) if lock else None)
        )
    if lock:
        raise LoginRefused(
            f"wrong user name or password; too many failed logins for {name!r}: try again in {lock:.0f} s",
            lock,
        )
    raise LoginRefused("wrong user name or password")

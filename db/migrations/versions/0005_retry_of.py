"""What a retry is: `runs.retry_of`, the run a retry cloned (NULL for every other run), so
Compare's "the newest copy of a seed counts" follows the retries the user asked for instead
of matching config and seed (an identical relaunch is its own run, not a retry).

Old rows are filled where the store can tell: run M is a retry of run N when a retry left a
marker (the audit event `retry` on N with detail `as run M`, or M's name ending in
`(retry of #N)`, as `services.actions.retry_name` names it), N still exists, N is older
(N < M), and both have the same config apart from name and tags (so the same seed). Every
other old run keeps NULL: same config and seed alone is not a retry (it may be a relaunch).

Revision ID: 0005_retry_of
Revises: 0004_ids
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005_retry_of"
down_revision = "0004_ids"
branch_labels = None
depends_on = None

_NAME_MARK = re.compile(r" \(retry of #(\d+)\)$")
_AUDIT_MARK = re.compile(r"^as run (\d+)$")


def _identity(config: Any) -> str:
    if isinstance(config, str):  # SQLite hands JSON back as text through a plain select
        config = json.loads(config)
    cfg = {k: v for k, v in (config or {}).items() if k not in ("name", "tags")}
    return json.dumps(cfg, sort_keys=True, default=str)


def backfill(conn: sa.Connection) -> int:
    """Fill `retry_of` of old rows where a marker says so (see the module docstring);
    returns the number of rows filled."""
    claims: dict[int, int] = {}  # retry id -> original id
    audit = conn.execute(
        sa.text("SELECT run_id, detail FROM audit_events WHERE action = 'retry' AND run_id IS NOT NULL")
    )
    for original, detail in audit:
        m = _AUDIT_MARK.match(detail or "")
        if m:
            claims.setdefault(int(m.group(1)), int(original))
    for run_id, name in conn.execute(sa.text("SELECT id, name FROM runs WHERE name LIKE '%(retry of #%)'")):
        m = _NAME_MARK.search(name or "")
        if m:
            claims.setdefault(int(run_id), int(m.group(1)))
    claims = {r: o for r, o in claims.items() if o < r}
    if not claims:
        return 0
    ids = sorted(set(claims) | set(claims.values()))
    configs: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = conn.execute(
            sa.text("SELECT id, config FROM runs WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": chunk},
        )
        configs.update({int(i): _identity(c) for i, c in rows})
    filled = 0
    for retry_id, original in sorted(claims.items()):
        if retry_id in configs and original in configs and configs[retry_id] == configs[original]:
            conn.execute(
                sa.text("UPDATE runs SET retry_of = :o WHERE id = :r"), {"o": original, "r": retry_id}
            )
            filled += 1
    return filled


def upgrade() -> None:
    # plain ADD COLUMN (nullable, no default): no table copy on either backend. Deleting the
    # original clears the column first (db.delete_run), so the foreign key never blocks it.
    # SQLite takes a REFERENCES clause in ADD COLUMN (a NULL default), which Alembic's
    # op.add_column refuses to render, so it is written out there.
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ALTER TABLE runs ADD COLUMN retry_of INTEGER REFERENCES runs (id)")
    else:
        op.add_column(
            "runs",
            sa.Column("retry_of", sa.Integer(), sa.ForeignKey("runs.id"), nullable=True),
        )
    op.create_index("ix_runs_retry_of", "runs", ["retry_of"])
    backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_runs_retry_of", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("retry_of")

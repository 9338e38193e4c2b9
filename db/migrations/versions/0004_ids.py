"""Run ids are never reused: on SQLite the runs table is rebuilt with AUTOINCREMENT (a
plain INTEGER PRIMARY KEY hands out max(id) + 1, so deleting the newest run gave its id to
the next one). The rows, their ids and the indexes are kept; sqlite_sequence starts at
the highest id there is. PostgreSQL needs nothing: its sequence never repeats a value.
`db.upgrade` turns SQLite's foreign-key checks off around the migrations, so the rebuild
(copy, drop, rename) leaves the tables that reference runs alone.

Revision ID: 0004_ids
Revises: 0003_alerts
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0004_ids"
down_revision = "0003_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("runs", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("runs", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass

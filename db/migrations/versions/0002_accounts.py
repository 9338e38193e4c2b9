"""Accounts and exact reruns: users, audit_events, and on runs the owner, the recorded
environment and the run a rerun reproduces. Existing runs keep everything (owner NULL:
launched before accounts existed).

Revision ID: 0002_accounts
Revises: 0001_initial
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_accounts"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    # plain ADD COLUMN (nullable): no table copy, existing rows keep their values
    op.add_column("runs", sa.Column("owner", sa.String(200), nullable=True))
    op.add_column("runs", sa.Column("environment", _json(), nullable=True))
    op.add_column("runs", sa.Column("rerun_of", sa.Integer(), nullable=True))
    op.create_index("ix_runs_owner", "runs", ["owner"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(400), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _ts(), nullable=True),
        sa.Column("sessions_after", _ts(), nullable=True),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("time", _ts(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("target_user", sa.String(200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_events_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_events_run_id", "audit_events", ["run_id"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("users")
    op.drop_index("ix_runs_owner", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("rerun_of")
        batch.drop_column("environment")
        batch.drop_column("owner")

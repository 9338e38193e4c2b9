"""Alerts as events: on `events` the kind (`alert`, NULL for the older log events), the
step, a deterministic alert key (unique per run, so an alert re-sent by a resumed run is
stored once) and a JSON document (severity, modality, detector, evidence, advice).
Existing events keep everything.

Revision ID: 0003_alerts
Revises: 0002_accounts
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_alerts"
down_revision = "0002_accounts"
branch_labels = None
depends_on = None


def _json() -> sa.types.TypeEngine:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    # plain ADD COLUMN (nullable): no table copy, existing rows keep their values
    op.add_column("events", sa.Column("kind", sa.String(16), nullable=True))
    op.add_column("events", sa.Column("step", sa.BigInteger(), nullable=True))
    op.add_column("events", sa.Column("alert_key", sa.String(200), nullable=True))
    op.add_column("events", sa.Column("data", _json(), nullable=True))
    # NULL keys (every non-alert event) never conflict on either backend
    op.create_index("uq_events_run_alert_key", "events", ["run_id", "alert_key"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_run_alert_key", "events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("data")
        batch.drop_column("alert_key")
        batch.drop_column("step")
        batch.drop_column("kind")

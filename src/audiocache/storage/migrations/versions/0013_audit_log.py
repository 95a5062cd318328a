"""The audit log: one row per write request an API key made (who, what, when, from where,
outcome), kept ``audit_retention_days``.

Revision ID: 0012_audit_log
Revises: 0011_take_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_audit_log"
down_revision = "0012_transcript_sort"


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("account_id", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=True),
        sa.Column("entry_id", sa.String(40), nullable=True),
        sa.Column("target_id", sa.String(128), nullable=True),
        sa.Column("address", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_account_at", "audit_log", ["account_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")

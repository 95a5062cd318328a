"""Synthesis leases: single flight across instances.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.create_table(
        "synthesis_leases",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("synthesis_leases")

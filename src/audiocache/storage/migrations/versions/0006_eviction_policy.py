"""Eviction policy per agent: entry and byte limits, lru/lfu, TTL, and an evicted count.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

_COLUMNS = ("max_entries", "max_bytes", "eviction", "ttl_seconds", "ttl_from", "evicted_total")


def upgrade() -> None:
    # recreate="never": rebuilding ``agents`` on SQLite would drop it, and the drop deletes
    # every entry through ON DELETE CASCADE (see 0004).
    with op.batch_alter_table("agents", recreate="never") as batch:
        batch.add_column(sa.Column("max_entries", sa.Integer, nullable=True))
        batch.add_column(sa.Column("max_bytes", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("eviction", sa.String(8), nullable=True))
        batch.add_column(sa.Column("ttl_seconds", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("ttl_from", sa.String(16), nullable=True))
        batch.add_column(
            sa.Column("evicted_total", sa.BigInteger, nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("agents", recreate="never") as batch:
        for name in reversed(_COLUMNS):
            batch.drop_column(name)

"""Lookup stats: hourly and all-time runtime-path counts per agent and provider, and a
partial index for the pinned count.

Revision ID: 0010
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"

_COUNTS = (
    ("lookups", sa.BigInteger),
    ("hits", sa.BigInteger),
    ("lookup_chars", sa.BigInteger),
    ("hit_chars", sa.BigInteger),
    ("syntheses", sa.BigInteger),
    ("synthesis_chars", sa.BigInteger),
    ("synthesis_seconds", sa.Float),
    ("privacy_skipped", sa.BigInteger),
)


def _counts() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, kind, nullable=False, server_default="0") for name, kind in _COUNTS]


def upgrade() -> None:
    op.create_table(
        "lookup_stats",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("hour", sa.DateTime, primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        *_counts(),
    )
    op.create_index("ix_lookup_stats_hour", "lookup_stats", ["hour"])
    op.create_table(
        "lookup_totals",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        *_counts(),
    )
    op.create_index(
        "ix_entries_agent_pinned",
        "audio_cache_entries",
        ["agent_id"],
        sqlite_where=sa.text("pinned"),
        postgresql_where=sa.text("pinned"),
    )


def downgrade() -> None:
    op.drop_index("ix_entries_agent_pinned", table_name="audio_cache_entries")
    op.drop_table("lookup_totals")
    op.drop_index("ix_lookup_stats_hour", table_name="lookup_stats")
    op.drop_table("lookup_stats")

"""Indexes of eviction's orders: victims are read in order from an index, not sorted.

Revision ID: 0015_eviction_order
Revises: 0011_take_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_eviction_order"
down_revision = "0015_word_timings"

_TABLE = "audio_cache_entries"
# The very expression of ``tables.LAST_USED``: SQLite uses an expression index only for it.
_LAST_USED = sa.text("coalesce(last_hit_at, cached_at)")
_INDEXES: dict[str, list[str | sa.TextClause]] = {
    "ix_entries_agent_last_used": ["agent_id", _LAST_USED, "id"],
    "ix_entries_agent_lfu": ["agent_id", "hit_count", _LAST_USED, "id"],
    "ix_entries_last_used": [_LAST_USED, "id"],
    "ix_entries_lfu": ["hit_count", _LAST_USED, "id"],
}


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, _TABLE, columns)


def downgrade() -> None:
    for name in reversed(_INDEXES):
        op.drop_index(name, table_name=_TABLE)

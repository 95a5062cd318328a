"""The list sorts by voice too: ``(agent_id, provider_voice_id, id)``, like every other sort
order (migration 0005), so a page by voice is read in index order.

Revision ID: 0015_voice_sort
Revises: 0012_audit_log
"""

from alembic import op

revision = "0015_voice_sort"
down_revision = "0015_entry_warmed"

_TABLE = "audio_cache_entries"
_INDEX = "ix_entries_agent_provider_voice_id"


def upgrade() -> None:
    op.create_index(_INDEX, _TABLE, ["agent_id", "provider_voice_id", "id"])


def downgrade() -> None:
    op.drop_index(_INDEX, table_name=_TABLE)

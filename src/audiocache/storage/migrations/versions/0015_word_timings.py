"""Word timestamps of stored takes, keyed by blob and cache key (kept by the runtime store).

Revision ID: 0015_word_timings
Revises: 0012_audit_log
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_word_timings"
down_revision = "0015_voice_sort"


def upgrade() -> None:
    op.create_table(
        "audio_cache_word_timings",
        sa.Column("blob_sha256", sa.String(64), primary_key=True),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("words_json", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audio_cache_word_timings")

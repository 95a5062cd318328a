"""Per entry: whether a warm-up asked for it (``POST …/warm``, ``audiocache warm``), kept
apart from ``pinned`` (a warm-up may leave it unpinned; an operator may unpin it later) and
carried by exports and imports.

Revision ID: 0015_entry_warmed
Revises: 0012_audit_log
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_entry_warmed"
down_revision = "0012_audit_log"


def upgrade() -> None:
    # recreate="never": an ALTER TABLE … ADD COLUMN, no copy of the table (its FTS triggers
    # and foreign keys stay as they are).
    with op.batch_alter_table("audio_cache_entries", recreate="never") as batch:
        batch.add_column(sa.Column("warmed", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("audio_cache_entries", recreate="never") as batch:
        batch.drop_column("warmed")

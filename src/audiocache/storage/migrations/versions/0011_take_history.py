"""Earlier takes of an entry: what replace, replace-with-settings, regenerate and restore
moved out of it, kept (bounded per entry) so an operator can listen and restore.

Revision ID: 0011_take_history
Revises: 0014_agent_privacy
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_take_history"
down_revision = "0014_agent_privacy"


def upgrade() -> None:
    op.create_table(
        "audio_cache_takes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.Integer, nullable=False),
        sa.Column("agent_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("transcript", sa.Text, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_voice_id", sa.String(200), nullable=False),
        sa.Column("language_code", sa.String(35), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("config_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("regenerated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("imported", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("audio_filename", sa.String(255), nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_takes_entry_id", "audio_cache_takes", ["entry_id", "id"])
    op.create_index("ix_audio_cache_takes_agent_id", "audio_cache_takes", ["agent_id"])
    op.create_index("ix_audio_cache_takes_blob_sha256", "audio_cache_takes", ["blob_sha256"])


def downgrade() -> None:
    op.drop_table("audio_cache_takes")

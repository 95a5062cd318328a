"""Initial schema: api keys, agents, audio cache entries, admission counters, pending deletes.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("account_id", sa.String(128), nullable=False, index=True),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("grants", sa.Text, nullable=False),
        sa.Column("label", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("revoked_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(128), nullable=False, index=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("greeting", sa.Text, nullable=False, server_default=""),
        sa.Column("language_code", sa.String(35), nullable=False, server_default="en-GB"),
        sa.Column("voice_id", sa.String(200), nullable=True),
        sa.Column("llm_model_id", sa.String(200), nullable=True),
        sa.Column("admission", sa.String(16), nullable=False, server_default="default"),
        sa.Column("admission_min_hits", sa.Integer, nullable=True),
        sa.Column("admission_window_seconds", sa.Integer, nullable=True),
        sa.Column("branch_count", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "audio_cache_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "agent_id",
            sa.String(128),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("transcript", sa.Text, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("provider_voice_id", sa.String(200), nullable=False),
        sa.Column("language_code", sa.String(35), nullable=False, server_default=""),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("config_json", sa.Text, nullable=False, server_default="{}"),
        sa.Column("blob_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("hit_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cached_at", sa.DateTime, nullable=False),
        sa.Column("last_hit_at", sa.DateTime, nullable=True),
        sa.Column("regenerated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("imported", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("pinned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("audio_filename", sa.String(255), nullable=True),
        sa.UniqueConstraint("agent_id", "cache_key", name="uq_entries_agent_key"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_entries_agent_cached", "audio_cache_entries", ["agent_id", "cached_at"])
    op.create_table(
        "phrase_requests",
        sa.Column("agent_id", sa.String(128), primary_key=True),
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("request_count", sa.Integer, nullable=False),
        sa.Column("window_started_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "pending_blob_deletes",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("queued_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "pending_blob_deletes",
        "phrase_requests",
        "audio_cache_entries",
        "agents",
        "api_keys",
    ):
        op.drop_table(table)

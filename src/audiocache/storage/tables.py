"""The metadata schema (SQLAlchemy Core). Alembic migrations in ``migrations/`` create it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key_id", sa.String(32), nullable=False, unique=True),
    sa.Column("account_id", sa.String(128), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("grants", sa.Text, nullable=False),
    sa.Column("label", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime, nullable=True),
)

agents = sa.Table(
    "agents",
    metadata,
    # Internal id: what entries and cache keys refer to. Clients name an agent by its
    # public id, unique within the account (another account may use the same one).
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("account_id", sa.String(128), nullable=False, index=True),
    sa.Column("public_id", sa.String(128), nullable=False, server_default=""),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("greeting", sa.Text, nullable=False, server_default=""),
    sa.Column("language_code", sa.String(35), nullable=False, server_default="en-GB"),
    sa.Column("voice_id", sa.String(200), nullable=True),
    sa.Column("llm_model_id", sa.String(200), nullable=True),
    # admission: "default" (installation setting), "always", "never" or "min_hits"
    sa.Column("admission", sa.String(16), nullable=False, server_default="default"),
    sa.Column("admission_min_hits", sa.Integer, nullable=True),
    sa.Column("admission_window_seconds", sa.Integer, nullable=True),
    sa.Column("branch_count", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    # eviction policy (null: no limit of the agent's own) and what eviction removed so far
    sa.Column("max_entries", sa.Integer, nullable=True),
    sa.Column("max_bytes", sa.BigInteger, nullable=True),
    sa.Column("eviction", sa.String(8), nullable=True),
    sa.Column("ttl_seconds", sa.BigInteger, nullable=True),
    sa.Column("ttl_from", sa.String(16), nullable=True),
    sa.Column("evicted_total", sa.BigInteger, nullable=False, server_default="0"),
    # phrases that look personal (cache/privacy.py) on the runtime paths: "skip" or "cache"
    sa.Column("personal_data", sa.String(8), nullable=False, server_default="skip"),
    sa.Index("uq_agents_account_public_id", "account_id", "public_id", unique=True),
)

entries = sa.Table(
    "audio_cache_entries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "agent_id", sa.String(128), sa.ForeignKey("agents.id", ondelete="CASCADE"), nullable=False
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
    # One index per sort order of the list (migration 0005): a page is read in index order.
    sa.Index("ix_entries_agent_id", "agent_id", "id"),
    # The stats' pinned count reads this partial index, not the agent's rows (0010).
    sa.Index(
        "ix_entries_agent_pinned",
        "agent_id",
        sqlite_where=sa.text("pinned"),
        postgresql_where=sa.text("pinned"),
    ),
    *(
        sa.Index(f"ix_entries_agent_{column}", "agent_id", column, "id")
        for column in (
            "hit_count",
            "cached_at",
            "duration",
            "provider",
            "language_code",
            "last_hit_at",
            "size_bytes",
        )
    ),
    sqlite_autoincrement=True,  # ids are never reused: a deleted id stays deleted
)

# The list sorts transcripts by a prefix (a B-tree entry is capped at ~2.7 kB on PostgreSQL).
TRANSCRIPT_PREFIX = 256
# The bounds are literals, never bound parameters: SQLite matches an expression index only
# to the very same expression, and PostgreSQL's generic plans would miss it likewise.
transcript_sort_key = sa.func.substr(
    entries.c.transcript, sa.literal_column("1"), sa.literal_column(str(TRANSCRIPT_PREFIX))
)
sa.Index("ix_entries_agent_transcript", entries.c.agent_id, transcript_sort_key, entries.c.id)

# Eviction's orders (migration 0015): when an entry was last used (a never-hit one counts
# from when it was cached), per agent and across agents, for lru and lfu.
LAST_USED = sa.func.coalesce(entries.c.last_hit_at, entries.c.cached_at)
sa.Index("ix_entries_agent_last_used", entries.c.agent_id, LAST_USED, entries.c.id)
sa.Index("ix_entries_agent_lfu", entries.c.agent_id, entries.c.hit_count, LAST_USED, entries.c.id)
sa.Index("ix_entries_last_used", LAST_USED, entries.c.id)
sa.Index("ix_entries_lfu", entries.c.hit_count, LAST_USED, entries.c.id)

# Not in the metadata: transcript search indexes, one per dialect (migration 0005) — an
# FTS5 trigram table ``audio_cache_entries_fts`` kept by triggers on SQLite, a pg_trgm GIN
# index ``ix_entries_transcript_trgm`` on lower(transcript) on PostgreSQL.

# Entries and bytes per agent, kept in the transaction of every insert and delete: an exact
# unfiltered totalCount without counting rows, and what quotas compare against. An agent
# without a row (none is missing after migration 0005) is counted row by row instead.
agent_usage = sa.Table(
    "agent_usage",
    metadata,
    sa.Column(
        "agent_id",
        sa.String(128),
        sa.ForeignKey("agents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("entry_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("total_bytes", sa.BigInteger, nullable=False, server_default="0"),
)

phrase_requests = sa.Table(
    "phrase_requests",
    metadata,
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("request_count", sa.Integer, nullable=False),
    sa.Column("window_started_at", sa.DateTime, nullable=False),
)

pending_blob_deletes = sa.Table(
    "pending_blob_deletes",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("queued_at", sa.DateTime, nullable=False),
)

voices = sa.Table(
    "voices",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("account_id", sa.String(128), nullable=False, index=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    sa.Column("provider_voice_id", sa.String(200), nullable=False),
    sa.Column("config_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("metadata_json", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# The last synthesized sample of each library voice: a blob reference like an entry's.
voice_samples = sa.Table(
    "voice_samples",
    metadata,
    sa.Column(
        "voice_id", sa.String(64), sa.ForeignKey("voices.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("sample_key", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("blob_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# Converted copies of a blob (telephony formats), cached by (source blob, format name).
audio_variants = sa.Table(
    "audio_variants",
    metadata,
    sa.Column("source_sha256", sa.String(64), primary_key=True),
    sa.Column("format", sa.String(32), primary_key=True),
    sa.Column("variant_sha256", sa.String(64), nullable=False, index=True),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# Who is synthesizing a phrase right now, across instances: one live lease per phrase.
synthesis_leases = sa.Table(
    "synthesis_leases",
    metadata,
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
)

# Runtime-path lookups per agent, clock hour and provider (``cache/lookups.py``), upserted by
# the hit flusher; rows older than 31 days are deleted, so the table stays bounded. No
# foreign key: a flush racing an agent's delete must not fail (and retry) its whole batch.
_LOOKUP_COUNTS = (
    ("lookups", sa.BigInteger),
    ("hits", sa.BigInteger),
    ("lookup_chars", sa.BigInteger),
    ("hit_chars", sa.BigInteger),
    ("syntheses", sa.BigInteger),
    ("synthesis_chars", sa.BigInteger),
    ("synthesis_seconds", sa.Float),
    ("privacy_skipped", sa.BigInteger),
)


def lookup_count_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(name, kind, nullable=False, server_default="0") for name, kind in _LOOKUP_COUNTS
    ]


lookup_stats = sa.Table(
    "lookup_stats",
    metadata,
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("hour", sa.DateTime, primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    *lookup_count_columns(),
    sa.Index("ix_lookup_stats_hour", "hour"),
)

# The same counts since the agent was created (what the savings add up).
lookup_totals = sa.Table(
    "lookup_totals",
    metadata,
    sa.Column("agent_id", sa.String(128), primary_key=True),
    sa.Column("provider", sa.String(64), primary_key=True),
    *lookup_count_columns(),
)

# Earlier takes of an entry (``storage/takes_repo.py``): a blob reference like an entry's,
# bounded per entry by ``take_history_limit``. No foreign key: the entry's delete removes
# its takes itself, after the entry row, so it can queue their blobs in the same transaction
# (a cascade would drop the rows without telling which blobs they held).
takes = sa.Table(
    "audio_cache_takes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("entry_id", sa.Integer, nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime, nullable=False),  # when it left the entry
    sa.Column("reason", sa.String(32), nullable=False),  # what replaced it
    sa.Column("blob_sha256", sa.String(64), nullable=False, index=True),
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
    sa.Index("ix_takes_entry_id", "entry_id", "id"),
    sqlite_autoincrement=True,
)

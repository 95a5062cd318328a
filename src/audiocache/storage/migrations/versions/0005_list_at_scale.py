"""Listing a million entries: one index per sort order, a transcript search index, and
per-agent usage counters (an exact ``totalCount`` without counting rows).

- ``(agent_id, <sort column>, id)`` for every sort field, so a page is read in index order
  (no sort of the agent's rows) and ``id`` breaks ties as the list does.
  The transcript index holds the first 256 characters (what the list sorts by): a
  PostgreSQL B-tree entry may not pass ~2.7 kB and a transcript may be 5,000 characters.
- ``transcript contains``: an FTS5 trigram index on SQLite (external content, kept in step
  by triggers, so every writer — present or future — maintains it), a pg_trgm GIN index on
  ``lower(transcript)`` on PostgreSQL (the expression the filter uses).
- ``agent_usage``: entries and bytes per agent, kept by the repositories in the same
  transaction as each insert and delete (and needed by quotas).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"

_TABLE = "audio_cache_entries"
# (index name, column) per sort field; id alone is (agent_id, id).
SORT_INDEXES = [
    ("ix_entries_agent_hit_count", "hit_count"),
    ("ix_entries_agent_cached_at", "cached_at"),
    ("ix_entries_agent_duration", "duration"),
    ("ix_entries_agent_provider", "provider"),
    ("ix_entries_agent_language_code", "language_code"),
    ("ix_entries_agent_last_hit_at", "last_hit_at"),
    ("ix_entries_agent_size_bytes", "size_bytes"),
]
TRANSCRIPT_PREFIX = 256

_SQLITE_FTS = [
    f"CREATE VIRTUAL TABLE audio_cache_entries_fts USING fts5("
    f"transcript, content='{_TABLE}', content_rowid='id', tokenize='trigram')",
    f"CREATE TRIGGER audio_cache_entries_fts_insert AFTER INSERT ON {_TABLE} BEGIN "
    "INSERT INTO audio_cache_entries_fts(rowid, transcript) VALUES (new.id, new.transcript); "
    "END",
    f"CREATE TRIGGER audio_cache_entries_fts_delete AFTER DELETE ON {_TABLE} BEGIN "
    "INSERT INTO audio_cache_entries_fts(audio_cache_entries_fts, rowid, transcript) "
    "VALUES ('delete', old.id, old.transcript); END",
    f"CREATE TRIGGER audio_cache_entries_fts_update AFTER UPDATE OF transcript ON {_TABLE} "
    "BEGIN "
    "INSERT INTO audio_cache_entries_fts(audio_cache_entries_fts, rowid, transcript) "
    "VALUES ('delete', old.id, old.transcript); "
    "INSERT INTO audio_cache_entries_fts(rowid, transcript) VALUES (new.id, new.transcript); "
    "END",
    "INSERT INTO audio_cache_entries_fts(audio_cache_entries_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "agent_usage",
        sa.Column(
            "agent_id",
            sa.String(128),
            sa.ForeignKey("agents.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("entry_count", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("total_bytes", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.execute(
        "INSERT INTO agent_usage (agent_id, entry_count, total_bytes) "
        "SELECT agents.id, COUNT(e.id), COALESCE(SUM(e.size_bytes), 0) FROM agents "
        f"LEFT JOIN {_TABLE} e ON e.agent_id = agents.id GROUP BY agents.id"
    )

    # On SQLite (agent_id, cached_at) already ends in the rowid; PostgreSQL needs id spelt out.
    op.drop_index("ix_entries_agent_cached", table_name=_TABLE)
    op.create_index("ix_entries_agent_id", _TABLE, ["agent_id", "id"])
    for name, column in SORT_INDEXES:
        op.create_index(name, _TABLE, ["agent_id", column, "id"])
    op.create_index(
        "ix_entries_agent_transcript",
        _TABLE,
        ["agent_id", sa.text(f"substr(transcript, 1, {TRANSCRIPT_PREFIX})"), "id"],
    )
    if dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            f"CREATE INDEX ix_entries_transcript_trgm ON {_TABLE} "
            "USING gin (lower(transcript) gin_trgm_ops)"
        )
    else:
        for statement in _SQLITE_FTS:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.drop_index("ix_entries_transcript_trgm", table_name=_TABLE)
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER audio_cache_entries_fts_{trigger}")
        op.execute("DROP TABLE audio_cache_entries_fts")
    op.drop_index("ix_entries_agent_transcript", table_name=_TABLE)
    for name, _column in SORT_INDEXES:
        op.drop_index(name, table_name=_TABLE)
    op.drop_index("ix_entries_agent_id", table_name=_TABLE)
    op.create_index("ix_entries_agent_cached", _TABLE, ["agent_id", "cached_at"])
    op.drop_table("agent_usage")

"""Word timestamps per take (blob), as JSON: written once, read by the runtime lookup."""

from __future__ import annotations

import sqlalchemy as sa

from audiocache.storage.db import Database, utcnow
from audiocache.storage.tables import word_timings

__all__ = ["WordTimingRepository"]


class WordTimingRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, blob_sha256: str, cache_key: str, words_json: str) -> None:
        """Keep the timings of this take; the first stored stay (the take is the same audio)."""
        statement = (
            self.db.insert(word_timings)
            .values(
                blob_sha256=blob_sha256,
                cache_key=cache_key,
                words_json=words_json,
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(
                index_elements=[word_timings.c.blob_sha256, word_timings.c.cache_key]
            )
        )
        async with self.db.write() as conn:
            await conn.execute(statement)

    async def get(self, blob_sha256: str, cache_key: str) -> str | None:
        row = await self.db.first(
            sa.select(word_timings.c.words_json).where(
                word_timings.c.blob_sha256 == blob_sha256, word_timings.c.cache_key == cache_key
            )
        )
        return None if row is None else str(row["words_json"])

"""Which blob holds blob X converted to format F."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from audiocache.storage.db import Database, utcnow
from audiocache.storage.dialects import lock_blob
from audiocache.storage.references import is_primary_referenced
from audiocache.storage.tables import audio_variants


@dataclass(frozen=True)
class Variant:
    source_sha256: str
    format: str
    variant_sha256: str
    size_bytes: int


class VariantRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, source_sha256: str, fmt: str) -> Variant | None:
        query = sa.select(audio_variants).where(
            audio_variants.c.source_sha256 == source_sha256, audio_variants.c.format == fmt
        )
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return Variant(row.source_sha256, row.format, row.variant_sha256, row.size_bytes)

    async def save(
        self, variant: Variant, before_commit: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        """Record a variant (a concurrent identical record is fine: same bytes, same hash).

        Nothing is recorded if the source is no longer referenced: it is being collected,
        and its copy is left for gc rather than kept alive by a row of its own."""
        try:
            async with self.db.write() as conn:
                if not await is_primary_referenced(conn, variant.source_sha256):
                    return
                await conn.execute(
                    audio_variants.insert().values(**variant.__dict__, created_at=utcnow())
                )
                await lock_blob(conn, variant.variant_sha256)
                if before_commit is not None:
                    await before_commit()
        except IntegrityError:
            return

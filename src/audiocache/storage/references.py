"""Every table that refers to a blob, in one place, so gc and sweeps never miss one."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.tables import audio_variants, entries, takes, voice_samples

# (label for reports, the row's id column, its blob column); primary references first.
_REFERENCES = (
    ("entry", entries.c.id, entries.c.blob_sha256),
    ("voice_sample", voice_samples.c.voice_id, voice_samples.c.blob_sha256),
    ("take", takes.c.id, takes.c.blob_sha256),
    ("variant", audio_variants.c.source_sha256, audio_variants.c.variant_sha256),
)
_PRIMARY = _REFERENCES[:3]


async def drop_variants_of(conn: AsyncConnection, *sources: str) -> list[str]:
    """Blobs that are going take their converted copies with them; returns the copies'
    hashes, queued for collection."""
    if not sources:
        return []
    of_sources = audio_variants.c.source_sha256.in_(sorted(sources))
    variants = list(
        (await conn.execute(sa.select(audio_variants.c.variant_sha256).where(of_sources))).scalars()
    )
    if variants:
        await conn.execute(audio_variants.delete().where(of_sources))
        await queue_blob_deletes(conn, variants)
    return variants


async def referenced_among(conn: AsyncConnection, shas: list[str]) -> set[str]:
    """Which of these blobs something refers to: one query per referring table (a sweep's
    batch is checked at once, not blob by blob)."""
    found: set[str] = set()
    for _label, _id_column, blob_column in _REFERENCES:
        rest = sorted(set(shas) - found)
        if not rest:
            break
        query = sa.select(blob_column).where(blob_column.in_(rest)).distinct()
        found.update((await conn.execute(query)).scalars())
    return found


async def is_referenced(conn: AsyncConnection, sha256: str) -> bool:
    return await _referenced_by(conn, sha256, _REFERENCES)


async def is_primary_referenced(conn: AsyncConnection, sha256: str) -> bool:
    """Referenced by an entry, a sample or a take (not only as somebody's converted copy)."""
    return await _referenced_by(conn, sha256, _PRIMARY)


async def _referenced_by(
    conn: AsyncConnection, sha256: str, references: tuple[tuple[str, Any, Any], ...]
) -> bool:
    for _label, id_column, blob_column in references:
        query = sa.select(id_column).where(blob_column == sha256).limit(1)
        if (await conn.execute(query)).first() is not None:
            return True
    return False


async def all_references(conn: AsyncConnection) -> list[tuple[int | str, str]]:
    """(row id, blob hash) of every referencing row; entries by their numeric id, other rows
    as ``label:id``."""
    found: list[tuple[int | str, str]] = []
    for label, id_column, blob_column in _REFERENCES:
        for row_id, sha in await conn.execute(sa.select(id_column, blob_column)):
            found.append((row_id if label == "entry" else f"{label}:{row_id}", sha))
    return found

"""Every table that refers to a blob, in one place, so gc and sweeps never miss one."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from audiocache.storage.tables import entries, voice_samples

# (label for reports, the row's id column, its blob column)
_REFERENCES = (
    ("entry", entries.c.id, entries.c.blob_sha256),
    ("voice_sample", voice_samples.c.voice_id, voice_samples.c.blob_sha256),
)


async def is_referenced(conn: AsyncConnection, sha256: str) -> bool:
    for _label, id_column, blob_column in _REFERENCES:
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

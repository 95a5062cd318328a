"""The one way audio and the row that points at it are written together.

Every path that stores audio (a runtime miss, a warm-up, a runtime's own store, a replace,
a restore of lost audio) puts the blob first, then writes the row, and checks inside the
row's write transaction that the blob is still there: a concurrent sweep may have unlinked
an identical blob an instant before (``storage/gc.py``). Keeping that dance in one place is
what makes "a row never points at nothing" hold for every writer, not just the ones that
remembered it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from audiocache.audio.wav import WavInfo
from audiocache.models import Entry
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.gc import sweep_pending
from audiocache.storage.takes_repo import TakeChange

log = logging.getLogger("audiocache.cache")


class BlobWriter:
    def __init__(
        self,
        db: Database,
        entries: EntryRepository,
        blobs: BlobStore,
        *,
        sweep_batch: int = 100,
        sweep_concurrency: int = 16,
    ) -> None:
        self.db = db
        self.sweep_batch = sweep_batch  # blobs per sweep transaction (gc.sweep_pending)
        self.sweep_concurrency = sweep_concurrency  # of them deleted from the store at once
        self.entries = entries
        self.blobs = blobs

    async def insert(
        self, values: Mapping[str, Any], audio: bytes, info: WavInfo
    ) -> tuple[Entry, bool]:
        """A new entry for ``audio``; if its (agent, key) exists already, that one and False."""
        blob = await self.blobs.put(audio)
        row = {**values, "blob_sha256": blob.sha256, "size_bytes": blob.size}
        row["duration"] = info.duration
        entry, created = await self.entries.insert(
            row, before_commit=lambda: self.ensure(blob.sha256, audio)
        )
        await self.ensure(blob.sha256, audio)
        return entry, created

    async def update(
        self,
        entry: Entry,
        audio: bytes,
        info: WavInfo,
        changes: Mapping[str, Any],
        history: TakeChange | None = None,
    ) -> Entry:
        """Point ``entry`` at new audio (and ``changes``); the replaced take goes into the
        history (``history``) or is released, and released blobs are swept."""
        blob = await self.blobs.put(audio)
        updated, released = await self.entries.update_audio(
            entry,
            {
                **changes,
                "blob_sha256": blob.sha256,
                "size_bytes": blob.size,
                "duration": info.duration,
            },
            before_commit=lambda: self.ensure(blob.sha256, audio),
            history=history,
        )
        await self.ensure(blob.sha256, audio)
        if released:
            await self.sweep(released)
        return updated

    async def ensure(self, sha256: str, data: bytes) -> None:
        """Put the blob back if a concurrent sweep took an identical one.

        Called inside the row's write transaction (SQLite: the sweeper holds the same write
        lock while it unlinks, so a kill after the commit cannot leave the row without its
        blob) and again after the commit (backends whose sweeper does not take that lock).
        """
        if await self.blobs.stat(sha256) is None:
            log.warning(
                "blob %s vanished before its row was visible (concurrent sweep); writing it again",
                sha256,
            )
            await self.blobs.put(data)

    async def sweep(self, shas: list[str] | None) -> None:
        """Collect queued blobs (``shas`` only, or all); best effort: gc finishes any rest."""
        try:
            await sweep_pending(
                self.db,
                self.blobs,
                only=shas,
                batch=self.sweep_batch,
                concurrency=self.sweep_concurrency,
            )
        except Exception:
            # The queue keeps the hashes; the next sweep (start-up, gc) finishes the job.
            log.exception("blob sweep failed; left queued")

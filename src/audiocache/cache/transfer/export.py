"""An agent's entries and their audio as a stream of archive bytes (``archive.py``).

Entries are read a page at a time in id order; each distinct blob is streamed from the
blob store into its tar member chunk by chunk, and its manifest record goes to a spooled
temporary file (memory up to 1 MiB, then disk), written as the last member. Memory stays
at one chunk and one page of rows whatever the size of the agent's cache.

An entry whose blob is missing (``audiocache check`` reports those) is left out and named
in the manifest's ``missingAudio``, so the archive stays importable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from audiocache import __version__
from audiocache.cache.hits import HitCounter
from audiocache.cache.transfer.archive import (
    END_OF_ARCHIVE,
    FORMAT,
    MANIFEST,
    VERSION,
    audio_name,
    iso,
    member_header,
    padding,
)
from audiocache.models import Agent, Entry
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.entries_repo import EntryRepository

log = logging.getLogger("audiocache.transfer")
PAGE = 500
MANIFEST_SPOOL_BYTES = 1024 * 1024
READ_CHUNK = 256 * 1024


def manifest_record(entry: Entry, hit_count: int) -> dict[str, Any]:
    return {
        "id": str(entry.id),
        "transcript": entry.transcript,
        "provider": entry.provider,
        "voice": entry.provider_voice_id,
        "language": entry.language_code,
        "model": entry.model,
        "config": entry.config,
        "flags": {
            "imported": entry.imported,
            "regenerated": entry.regenerated,
            "pinned": entry.pinned,
            "warmed": bool(getattr(entry, "warmed", False)),
        },
        "hitCount": hit_count,
        "cachedAt": iso(entry.cached_at),
        "lastHitAt": iso(entry.last_hit_at),
        "duration": entry.duration,
        "audioFilename": entry.audio_filename,
        "file": audio_name(entry.blob_sha256),
        "sha256": entry.blob_sha256,
        "sizeBytes": entry.size_bytes,
    }


async def export_agent(
    entries: EntryRepository,
    blobs: BlobStore,
    agent: Agent,
    *,
    hits: HitCounter | None = None,
) -> AsyncIterator[bytes]:
    """The archive of ``agent``'s cache, as chunks to write or send as they come."""
    spool: IO[bytes] = SpooledTemporaryFile(max_size=MANIFEST_SPOOL_BYTES)  # noqa: SIM115
    try:
        head = {
            "format": FORMAT,
            "version": VERSION,
            "exportedAt": iso(datetime.now(UTC).replace(tzinfo=None)),
            "generator": f"audiocache {__version__}",
            "agent": {
                "agentId": agent.public_id,
                "name": agent.name,
                "languageCode": agent.language_code,
                "voiceId": agent.voice_id,
            },
        }
        spool.write(json.dumps(head)[:-1].encode() + b', "entries": [')
        written: set[str] = set()
        missing: list[str] = []
        count, after = 0, 0
        while page := await _page(entries, hits, agent.id, after):
            after = page[-1][0].id
            for entry, hit_count in page:
                sha = entry.blob_sha256
                if sha not in written:
                    info = await blobs.stat(sha)
                    if info is None:
                        log.warning("export: entry %s has no audio %s; left out", entry.id, sha)
                        missing.append(str(entry.id))
                        continue
                    yield member_header(audio_name(sha), info.size)
                    async for chunk in blobs.open_range(sha):
                        yield bytes(chunk)  # a backend may hand out its read buffer
                    yield padding(info.size)
                    written.add(sha)
                record = manifest_record(entry, hit_count)
                spool.write((b",\n" if count else b"\n") + json.dumps(record).encode())
                count += 1
        spool.write(b"\n], " + json.dumps({"missingAudio": missing}).encode()[1:])
        size = spool.tell()
        spool.seek(0)
        yield member_header(MANIFEST, size)
        while chunk := spool.read(READ_CHUNK):
            yield chunk
        yield padding(size)
        yield END_OF_ARCHIVE
        log.info("exported %d entries (%d audio files) of agent %s", count, len(written), agent.id)
    finally:
        spool.close()


async def _page(
    entries: EntryRepository, hits: HitCounter | None, agent_id: str, after: int
) -> list[tuple[Entry, int]]:
    """The next page, each entry with its hit count including this process's unflushed
    hits (read under the counter's lock, so a flush in between counts nothing twice or not
    at all)."""
    if hits is None:
        return [(e, e.hit_count) for e in await entries.page_after(agent_id, after, PAGE)]
    async with hits.settled():
        page = await entries.page_after(agent_id, after, PAGE)
        return [(e, e.hit_count + hits.pending(e.id)) for e in page]

"""Bulk upload of takes: WAVs named in a mapping file, each put on its transcript's entry.

For each mapped file: its transcript, voice and language (the row's, else the upload's,
else the agent's) name the phrase. Every entry of the agent with exactly that transcript in
that voice and language (whatever its tuning), and the one under the phrase's canonical
key, gets the file as its audio, like ``PATCH …/file`` (``imported``, the old take kept in
the history). If none matches, the phrase is created under its canonical key, pinned and
imported, so the runtime path serves the take. Each file is reported: ``created``,
``replaced``, ``failed`` (with the reason) or, for a WAV the mapping does not name,
``skipped``. One file is in memory at a time.
"""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from audiocache.audio.wav import parse_wav
from audiocache.cache import runtime_store
from audiocache.cache.curation import Curation
from audiocache.cache.keys import KeyParts
from audiocache.cache.service import CacheService
from audiocache.cache.transfer.mapping import MAPPING_SUFFIXES, TakeRow, parse_mapping
from audiocache.cache.transfer.sources import Source, clean_name
from audiocache.errors import Conflict, InvalidInput, InvalidMapping
from audiocache.models import Agent, Entry

log = logging.getLogger("audiocache.transfer")
MAX_MATCHES = 100  # entries of one transcript replaced by one take (tunings of a phrase)


@dataclass(frozen=True)
class TakeResult:
    file: str
    action: str  # created | replaced | failed | skipped
    transcript: str | None = None
    entry_ids: list[int] = field(default_factory=list)
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "action": self.action,
            "transcript": self.transcript,
            "entryIds": [str(i) for i in self.entry_ids],
            "reason": self.reason,
        }


@dataclass(frozen=True)
class TakeLimits:
    max_file_bytes: int
    max_mapping_bytes: int


async def read_mapping(
    source: Source, limits: TakeLimits, name: str | None = None, raw: bytes | None = None
) -> list[TakeRow]:
    """The mapping: ``raw`` (a file given apart), the member ``name``, or the one CSV or
    JSON file of the source."""
    if raw is None:
        name = name or _only_mapping(source)
        if name not in source.names():
            raise InvalidMapping(f"The mapping file {name!r} is not in the upload")
        raw = await asyncio.to_thread(source.read, name, limits.max_mapping_bytes)
    if len(raw) > limits.max_mapping_bytes:
        raise InvalidMapping(
            f"The mapping is larger than {limits.max_mapping_bytes} bytes "
            "(AUDIOCACHE_TRANSFER_MAX_MANIFEST_BYTES)"
        )
    return parse_mapping(name or "mapping.csv", raw)


def _only_mapping(source: Source) -> str:
    found = [n for n in source.names() if n.lower().endswith(MAPPING_SUFFIXES)]
    if len(found) != 1:
        listed = ", ".join(found[:5]) or "none"
        raise InvalidMapping(
            f"Name the mapping file (CSV or JSON: file → transcript); found {listed}"
        )
    return found[0]


async def upload_takes(
    cache: CacheService,
    curation: Curation,
    agent: Agent,
    source: Source,
    rows: list[TakeRow],
    limits: TakeLimits,
    *,
    voice: str | None = None,
    language: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[TakeResult]:
    names = set(source.names())
    mapped = {clean_name(row.file) for row in rows}
    results: list[TakeResult] = []
    for done, row in enumerate(rows, 1):
        results.append(
            await _one(cache, curation, agent, source, names, row, limits, voice, language)
        )
        if progress is not None:
            progress(done, len(rows))
    results += [
        TakeResult(name, "skipped", reason="not named in the mapping")
        for name in sorted(names - mapped)
        if name.lower().endswith(".wav")
    ]
    return results


async def _one(
    cache: CacheService,
    curation: Curation,
    agent: Agent,
    source: Source,
    names: set[str],
    row: TakeRow,
    limits: TakeLimits,
    voice: str | None,
    language: str | None,
) -> TakeResult:
    name = clean_name(row.file)
    if name not in names:
        return TakeResult(row.file, "failed", row.transcript, reason="no such file in the upload")
    try:
        data = await asyncio.to_thread(source.read, name, limits.max_file_bytes)
        if len(data) > limits.max_file_bytes:
            raise InvalidInput(
                f"larger than {limits.max_file_bytes} bytes (AUDIOCACHE_TRANSFER_MAX_FILE_BYTES)"
            )
        info = parse_wav(data)
        parts = await runtime_store.key_parts(
            cache,
            agent,
            row.transcript,
            voice=row.voice or voice,
            language=row.language or language,
        )
        matches = await _matches(cache, agent, parts)
        filename = posixpath.basename(name)
        if matches:
            for entry in matches:
                await curation.replace_audio(entry, data, filename)
            return TakeResult(row.file, "replaced", row.transcript, [e.id for e in matches])
        entry, _created = await cache.writer.insert(
            {
                "agent_id": agent.id,
                "cache_key": parts.key,
                "transcript": parts.text,
                "provider": parts.provider,
                "provider_voice_id": parts.voice,
                "language_code": parts.language,
                "model": parts.model,
                "config": dict(parts.config),
                "imported": True,
                "pinned": True,
                "audio_filename": filename,
            },
            data,
            info,
        )
        return TakeResult(row.file, "created", row.transcript, [entry.id])
    except (InvalidInput, Conflict) as exc:
        return TakeResult(row.file, "failed", row.transcript, reason=exc.message)


async def _matches(cache: CacheService, agent: Agent, parts: KeyParts) -> list[Entry]:
    found = await cache.entries.with_text(
        agent.id, parts.text, parts.provider, parts.voice, parts.language, MAX_MATCHES
    )
    keyed = await cache.entries.find_by_key(agent.id, parts.key)
    if keyed is not None and all(e.id != keyed.id for e in found):
        found.append(keyed)
    return found

"""The operators' side of the cache: list, get, preview, replace, regenerate, pin, delete.

The runtime side (lookup-or-synthesize, single flight, admission) is ``service.py``; both
write audio through the one ``BlobWriter``. Every change here first tells the runtime to
forget what it remembers of recent stores (``forget_recent``), so a replaced or deleted
entry is never served from that memo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from audiocache.audio.wav import WavInfo, parse_wav
from audiocache.cache.accounting import Accounting
from audiocache.cache.blob_writer import BlobWriter
from audiocache.cache.hits import HitCounter
from audiocache.cache.keys import KeyParts
from audiocache.cache.text import validate_text
from audiocache.cache.tuning import repair_tuning, validate_tuning
from audiocache.errors import NotFound
from audiocache.models import Entry, EntryQuery
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.takes_repo import TakeChange
from audiocache.tts.base import EngineRegistry, SynthesisRequest


class Curation:
    def __init__(
        self,
        *,
        writer: BlobWriter,
        entries: EntryRepository,
        blobs: BlobStore,
        engines: EngineRegistry,
        hits: HitCounter,
        accounting: Accounting,
        max_text_chars: int,
        forget_recent: Callable[[], None],
    ) -> None:
        self.writer = writer
        self.entries = entries
        self.blobs = blobs
        self.engines = engines
        self.hits = hits
        self.accounting = accounting
        self.max_text_chars = max_text_chars
        self.forget_recent = forget_recent

    async def list_entries(self, agent_id: str, query: EntryQuery) -> tuple[list[Entry], int]:
        """Entries with hit counts that include this process's unflushed hits."""
        async with self.hits.settled():
            found, total = await self.entries.find_page(agent_id, query)
            counted = [replace(e, hit_count=e.hit_count + self.hits.pending(e.id)) for e in found]
        return counted, total

    async def get_entry(self, agent_id: str, entry_id: int) -> Entry:
        entry = await self.entries.get(agent_id, entry_id)
        if entry is None:
            raise NotFound("Audio cache entry not found")
        return entry

    async def preview(
        self, entry: Entry, text: str, config: Mapping[str, Any], language: str | None
    ) -> bytes:
        validate_text(text, self.max_text_chars)
        engine = self.engines.require(entry.provider)
        request = SynthesisRequest(
            text,
            entry.provider_voice_id,
            language if language is not None else entry.language_code,
            validate_tuning(config),
        )
        return await engine.synthesize(request)

    async def replace_audio(self, entry: Entry, wav: bytes, filename: str) -> Entry:
        info = parse_wav(wav)
        changes = {"audio_filename": filename, "imported": True}
        return await self._replace(entry, wav, info, changes, "replace")

    async def replace_details(
        self, entry: Entry, wav: bytes, filename: str, text: str, config: Mapping[str, Any]
    ) -> Entry:
        validate_text(text, self.max_text_chars, name="settings.text")
        config = validate_tuning(config, where="settings.config")
        info = parse_wav(wav)
        engine = self.engines.get(entry.provider)
        model = (
            engine.model_for(config, entry.provider_voice_id)
            if engine
            else str(config.get("modelId") or entry.model)
        )
        changes = {
            "audio_filename": filename,
            "imported": True,
            "transcript": text,
            "config": dict(config),
            "model": model,
            "cache_key": KeyParts.of_entry(entry, model=model, text=text, config=config).key,
        }
        return await self._replace(entry, wav, info, changes, "replace_with_settings")

    async def regenerate(self, entry: Entry) -> Entry:
        """Synthesize the entry's text again with its voice and settings, in place.

        The current model of the engine is used, so an entry made by an older model moves
        to the key the runtime path now asks for."""
        engine = self.engines.require(entry.provider)
        # A stored config the model now rejects is used without the bad fields, and the
        # repaired one is what gets written back.
        config = repair_tuning(entry.config, owner=f"entry {entry.id}")
        request = SynthesisRequest(
            entry.transcript, entry.provider_voice_id, entry.language_code, config
        )
        audio = await self.accounting.synthesize(entry.agent_id, engine, request)
        model = engine.model_for(config, entry.provider_voice_id)
        changes = {
            "model": model,
            "cache_key": KeyParts.of_entry(entry, model=model, config=config).key,
            "config": config,
            "regenerated": True,
            "imported": False,  # the hand-made take, if any, is gone
            "audio_filename": None,
        }
        return await self._replace(entry, audio, parse_wav(audio), changes, "regenerate")

    async def set_pinned(self, entry: Entry, pinned: bool) -> Entry:
        return await self.entries.set_pinned(entry, pinned)

    async def delete_entries(
        self, agent_id: str, entry_ids: list[int], *, evicting: bool = False
    ) -> list[int]:
        """Rows and queued blobs in one transaction, then the sweep (``storage/gc.py``);
        ``evicting`` spares entries pinned or uploaded meanwhile and counts the rest."""
        self.forget_recent()
        deleted = await self.entries.delete(agent_id, entry_ids, evicting=evicting)
        if deleted:
            await self.writer.sweep(None)
        return deleted

    async def sweep(self) -> None:
        """Collect whatever deletes left queued (best effort; gc finishes any rest)."""
        await self.writer.sweep(None)

    async def _replace(
        self,
        entry: Entry,
        wav: bytes,
        info: WavInfo,
        changes: dict[str, Any],
        reason: str,  # the replaced take goes into the history under this operation
    ) -> Entry:
        self.forget_recent()
        return await self.writer.update(entry, wav, info, changes, history=TakeChange(reason))

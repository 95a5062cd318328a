"""The cache itself: lookup-or-synthesize, admission, uploads and deletes.

Order of a write, everywhere: blob (durable) → row (commit) → make sure the blob is still
there (a concurrent sweep may have taken an identical one) → sweep what the row released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from audiocache.audio.wav import WavInfo, parse_wav
from audiocache.cache.accounting import Accounting
from audiocache.cache.admission import admits, needs_counting, personal_skip, policy_for
from audiocache.cache.blob_writer import BlobWriter
from audiocache.cache.degraded import StorageDegradation
from audiocache.cache.hits import HitCounter
from audiocache.cache.keys import cache_key
from audiocache.cache.leases import SynthesisLeases
from audiocache.cache.singleflight import SingleFlight
from audiocache.cache.streamed_miss import produce_streamed_miss
from audiocache.cache.streaming import SharedStream
from audiocache.cache.text import validate_text
from audiocache.cache.tuning import repair_tuning, validate_tuning
from audiocache.cache.voices import VoiceLibrary, canonical_provider
from audiocache.errors import (
    InvalidVoice,
    NotFound,
    ProviderUnavailable,
    StorageUnavailable,
)
from audiocache.metrics import Metrics
from audiocache.models import AdmissionPolicy, Agent, Entry, EntryQuery
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.takes_repo import TakeChange
from audiocache.tts.base import Engine, EngineRegistry, SynthesisRequest

log = logging.getLogger("audiocache.cache")
RECENT_SECONDS = 5.0


@dataclass(frozen=True)
class Voice:
    provider: str
    voice_id: str
    config: Mapping[str, Any] = field(default_factory=dict)  # a library voice's defaults


@dataclass(frozen=True)
class Prepared:
    engine: Engine
    request: SynthesisRequest
    key: str


@dataclass(frozen=True)
class SpeakResult:
    hit: bool
    entry: Entry | None
    audio: bytes | None = None  # set on a miss; on a hit the audio is read from the blob
    personal: str | None = None  # why a miss was not stored: it looks personal (privacy.py)


class CacheService:
    def __init__(
        self,
        *,
        db: Database,
        entries: EntryRepository,
        blobs: BlobStore,
        engines: EngineRegistry,
        hits: HitCounter,
        voices: VoiceLibrary,
        default_policy: AdmissionPolicy,
        default_provider: str,
        default_voice: str,
        max_text_chars: int,
        degraded: StorageDegradation | None = None,
        leases: SynthesisLeases | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.writer = BlobWriter(db, entries, blobs)
        self.accounting = Accounting(hits.lookups, metrics or Metrics())
        self.leases = leases  # single flight across instances; None: this process only
        self.degraded = degraded or StorageDegradation()
        self.entries = entries
        self.blobs = blobs
        self.engines = engines
        self.hits = hits
        self.voices = voices
        self.default_policy = default_policy
        self.default_provider = default_provider
        self.default_voice = default_voice
        self.max_text_chars = max_text_chars
        self._flights: SingleFlight[SpeakResult] = SingleFlight()
        self._warm_flights: SingleFlight[Entry] = SingleFlight()
        self._streams: dict[tuple[str, str], SharedStream] = {}
        # What flights stored in the last seconds: a caller whose lookup started before a
        # flight's commit and ended after the flight was gone finds it here, not in a new
        # synthesis. Checked with no await between it and starting a flight.
        self._recent: dict[tuple[str, str], tuple[float, Entry]] = {}

    # -- the runtime path -------------------------------------------------------------

    async def resolve_voice(self, agent: Agent, voice: str | None) -> Voice:
        """A library voice id, ``provider:voice`` or a bare voice of the default provider;
        when the request names none, the agent's voice."""
        name = (voice or agent.voice_id or self.default_voice).strip()
        library = await self.voices.find(agent.account_id, name)
        if library is not None:
            return Voice(
                canonical_provider(library.provider), library.provider_voice_id, library.config
            )
        provider, sep, voice_id = name.partition(":")
        if not sep:
            provider, voice_id = self.default_provider, name
        if not provider or not voice_id:
            raise InvalidVoice(f"Voice {name!r} must be 'voice' or 'provider:voice'")
        return Voice(provider, voice_id)

    def engine(self, provider: str) -> Engine:
        engine = self.engines.get(provider)
        if engine is None:
            raise ProviderUnavailable(
                f"No engine for provider {provider!r} on this server "
                f"(available: {', '.join(self.engines.providers()) or 'none'})"
            )
        return engine

    async def prepare(
        self,
        agent: Agent,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> Prepared:
        """Validate a request and work out its engine, synthesis request and cache key."""
        validate_text(text, self.max_text_chars)
        chosen = await self.resolve_voice(agent, voice)
        merged = {**chosen.config, **validate_tuning(config)}
        engine = self.engine(chosen.provider)
        await engine.validate_voice(chosen.voice_id)
        language = language if language is not None else agent.language_code
        key = cache_key(
            agent_id=agent.id,
            provider=chosen.provider,
            voice=chosen.voice_id,
            model=engine.model_for(merged, chosen.voice_id),
            language=language,
            text=text,
            config=merged,
        )
        return Prepared(engine, SynthesisRequest(text, chosen.voice_id, language, merged), key)

    async def speak(
        self,
        agent: Agent,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        config: Mapping[str, Any] | None = None,
        check_audio: bool = True,
    ) -> SpeakResult:
        prepared = await self.prepare(agent, text, voice=voice, language=language, config=config)
        hit = await self._hit(agent, prepared, check_audio)
        self._count_lookup(agent, prepared, hit is not None and hit.hit)
        if hit is not None:
            return hit
        streaming = self._streams.get((agent.id, prepared.key))
        if streaming is not None:  # a streamed miss of the same phrase is under way: share it
            streaming.listeners += 1
            self.accounting.joined()
            result: SpeakResult = await streaming.wait()
            return result
        self._count_join((agent.id, prepared.key))
        result, _leader = await self._flights.run(
            (agent.id, prepared.key),
            lambda: self._synthesize_and_admit(
                agent, prepared.engine, prepared.request, prepared.key
            ),
        )
        return result

    def _count_lookup(self, agent: Agent, prepared: Prepared, hit: bool) -> None:
        self.accounting.lookup(agent, prepared.engine.provider, len(prepared.request.text), hit)

    def _count_join(self, flight: tuple[str, str]) -> None:
        """Counted as the caller joins (no await between this and ``run``)."""
        if self._flights.callers(flight):
            self.accounting.joined()

    async def warm(
        self,
        agent: Agent,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        config: Mapping[str, Any] | None = None,
        pin: bool = True,
    ) -> tuple[Entry, bool]:
        """Make sure a phrase is cached, whatever the admission policy, and pin it.

        Returns the entry and whether it was synthesized now (False: it was cached already,
        so running a warm-up again only does what is left)."""
        prepared = await self.prepare(agent, text, voice=voice, language=language, config=config)
        entry = await self.entries.find_by_key(agent.id, prepared.key)
        created = entry is None
        if entry is None:

            async def synthesize_and_store() -> Entry:
                audio = await self.accounting.synthesize(
                    agent.id, prepared.engine, prepared.request
                )
                return await self._store(
                    agent, prepared.engine, prepared.request, prepared.key, audio, parse_wav(audio)
                )

            entry, _leader = await self._warm_flights.run(
                (agent.id, prepared.key), synthesize_and_store
            )
        if pin and not entry.pinned:
            entry = await self.set_pinned(entry, True)
        return entry, created

    async def regenerate(self, entry: Entry) -> Entry:
        """Synthesize the entry's text again with its voice and settings, in place.

        The current model of the engine is used, so an entry made by an older model moves
        to the key the runtime path now asks for."""
        engine = self.engine(entry.provider)
        # A stored config the model now rejects is used without the bad fields, and the
        # repaired one is what gets written back.
        config = repair_tuning(entry.config, owner=f"entry {entry.id}")
        request = SynthesisRequest(
            entry.transcript, entry.provider_voice_id, entry.language_code, config
        )
        audio = await self.accounting.synthesize(entry.agent_id, engine, request)
        model = engine.model_for(config, entry.provider_voice_id)
        key = cache_key(
            agent_id=entry.agent_id,
            provider=entry.provider,
            voice=entry.provider_voice_id,
            model=model,
            language=entry.language_code,
            text=entry.transcript,
            config=config,
        )
        changes = {
            "model": model,
            "cache_key": key,
            "config": config,
            "regenerated": True,
            "imported": False,  # the hand-made take, if any, is gone
            "audio_filename": None,
        }
        return await self._replace(entry, audio, parse_wav(audio), changes, "regenerate")

    async def set_pinned(self, entry: Entry, pinned: bool) -> Entry:
        return await self.entries.set_pinned(entry, pinned)

    async def _synthesize_and_admit(
        self, agent: Agent, engine: Engine, request: SynthesisRequest, key: str
    ) -> SpeakResult:
        if self.leases is None:
            audio = await self.accounting.synthesize(agent.id, engine, request)
            callers = self._flights.callers((agent.id, key)) or 1
            return await self._admit(agent, engine, request, key, audio, callers)
        elsewhere = await self.leases.lead_or_wait(
            agent.id, key, lambda: self.entries.find_by_key(agent.id, key)
        )
        if elsewhere is not None:  # another instance synthesized and stored it meanwhile
            self.hits.add(elsewhere.id, self._flights.callers((agent.id, key)) or 1)
            return SpeakResult(hit=True, entry=elsewhere)
        async with self.leases.renewed(agent.id, key):
            audio = await self.accounting.synthesize(agent.id, engine, request)
            callers = self._flights.callers((agent.id, key)) or 1
            return await self._admit(agent, engine, request, key, audio, callers)

    async def _admit(
        self,
        agent: Agent,
        engine: Engine,
        request: SynthesisRequest,
        key: str,
        audio: bytes,
        callers: int,
    ) -> SpeakResult:
        """Store a fresh synthesis if the agent's admission policy lets it in."""
        info = parse_wav(audio)
        policy = policy_for(agent, self.default_policy)
        unstored = SpeakResult(hit=False, entry=None, audio=audio)
        reason = personal_skip(agent, request.text)
        if reason is not None:  # served, never stored, never counted toward admission
            for _ in range(callers):  # counted in the stats (privacySkipped), flushed with hits
                self.hits.lookups.privacy_skipped(agent.id, engine.provider)
            log.info("personal data (%s) not cached for agent %s", reason, agent.id)
            return replace(unstored, personal=reason)
        try:
            requests = 0
            if needs_counting(policy):
                requests = await self.entries.record_request(
                    agent.id, key, policy.window_seconds, n=callers
                )
            if not admits(policy, requests):
                return unstored
            entry = await self._store(agent, engine, request, key, audio, info)
        except NotFound:
            # The agent was deleted meanwhile: the caller still gets what it asked for.
            return unstored
        except StorageUnavailable as exc:
            # Degrade, don't fail: the synthesis worked, so the caller gets it. A blob put
            # before the row failed is unreferenced and invisible; gc collects it.
            self.degraded.phrase_not_stored(exc, f"a synthesis for agent {agent.id}")
            return unstored
        if needs_counting(policy):
            try:
                await self.entries.forget_request(agent.id, key)
            except StorageUnavailable as exc:  # the entry is stored; a stale count is harmless
                log.warning("could not reset the request count of %s: %s", key, exc.message)
        self._remember_stored((agent.id, key), entry)
        return SpeakResult(hit=False, entry=entry, audio=audio)

    def _remember_stored(self, flight: tuple[str, str], entry: Entry) -> None:
        now = time.monotonic()
        if len(self._recent) > 1000:
            self._recent = {k: v for k, v in self._recent.items() if now - v[0] < RECENT_SECONDS}
        self._recent[flight] = (now, entry)

    def forget_recent(self) -> None:
        """Call after anything that removes or changes entries."""
        self._recent.clear()

    async def _hit(
        self, agent: Agent, prepared: Prepared, check_audio: bool = True
    ) -> SpeakResult | None:
        """The stored entry for this phrase, counted as a hit, if there is one to serve.

        ``check_audio``: make sure its blob is there first (lost audio is synthesized again).
        The routes skip that, since opening the blob to serve it finds out as well (one S3
        request per hit, not two), and ask again with it when the opening failed."""
        entry = await self.entries.find_by_key(agent.id, prepared.key)
        if entry is not None and check_audio and await self.blobs.stat(entry.blob_sha256) is None:
            restored = await self._restore_lost(entry, prepared)
            if isinstance(restored, bytes):
                return SpeakResult(hit=False, entry=None, audio=restored)
            entry = restored
        entry = entry or await self._recently_stored((agent.id, prepared.key))
        if entry is None:
            return None
        self.hits.add(entry.id)
        return SpeakResult(hit=True, entry=entry)

    async def _restore_lost(self, entry: Entry, prepared: Prepared) -> Entry | bytes:
        """An entry whose blob was lost is synthesized again in place (logged loudly), so
        callers keep being served; if storage refuses, the caller gets the audio unstored."""
        log.error("entry %s lost its audio %s; synthesizing it again", entry.id, entry.blob_sha256)
        audio = await self.accounting.synthesize(entry.agent_id, prepared.engine, prepared.request)
        try:
            return await self._replace(entry, audio, parse_wav(audio), {})
        except StorageUnavailable as exc:
            self.degraded.phrase_not_stored(exc, f"entry {entry.id}'s lost audio")
            return audio

    async def _recently_stored(self, flight: tuple[str, str]) -> Entry | None:
        """An entry a flight stored moments ago, if it is still there (a delete may have
        come in between: only then is the database asked)."""
        found = self._recent.get(flight)
        if found is None or time.monotonic() - found[0] >= RECENT_SECONDS:
            return None
        entry = await self.entries.get(found[1].agent_id, found[1].id)
        if entry is None or entry.cache_key != flight[1]:
            self._recent.pop(flight, None)
            return None
        return entry

    async def speak_streaming(
        self,
        agent: Agent,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        config: Mapping[str, Any] | None = None,
        check_audio: bool = True,
    ) -> SpeakResult | SharedStream:
        """Like ``speak``, but a miss on an engine that streams is handed back as a
        ``SharedStream`` of raw PCM the moment synthesis starts."""
        prepared = await self.prepare(agent, text, voice=voice, language=language, config=config)
        hit = await self._hit(agent, prepared, check_audio)
        self._count_lookup(agent, prepared, hit is not None and hit.hit)
        if hit is not None:
            return hit
        stream = self._shared_stream(agent, prepared)
        if stream is None:
            self._count_join((agent.id, prepared.key))
            result, _leader = await self._flights.run(
                (agent.id, prepared.key),
                lambda: self._synthesize_and_admit(
                    agent, prepared.engine, prepared.request, prepared.key
                ),
            )
            return result
        await stream.started()
        if not stream.chunks and isinstance(stream.result, SpeakResult):
            return stream.result  # another instance synthesized it: its stored entry
        return stream

    def _shared_stream(self, agent: Agent, prepared: Prepared) -> SharedStream | None:
        produce_pcm = getattr(prepared.engine, "stream", None)
        if produce_pcm is None:
            return None
        flight = (agent.id, prepared.key)
        shared = self._streams.get(flight)
        if shared is not None:
            shared.listeners += 1
            self.accounting.joined()
            return shared
        shared = SharedStream(prepared.engine.sample_rate_for(prepared.request.voice))  # type: ignore[attr-defined]
        self._streams[flight] = shared
        shared.task = asyncio.create_task(
            produce_streamed_miss(self, agent, prepared, produce_pcm, shared),
            name="streamed-synthesis",
        )
        return shared

    async def _store(
        self,
        agent: Agent,
        engine: Engine,
        request: SynthesisRequest,
        key: str,
        audio: bytes,
        info: WavInfo,
    ) -> Entry:
        values = {
            "agent_id": agent.id,
            "cache_key": key,
            "transcript": request.text,
            "provider": engine.provider,
            "provider_voice_id": request.voice,
            "language_code": request.language,
            "model": engine.model_for(request.config, request.voice),
            "config": dict(request.config),
        }
        entry, _created = await self.writer.insert(values, audio, info)
        return entry

    # -- operators' actions -----------------------------------------------------------

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
        engine = self.engine(entry.provider)
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
        key = cache_key(
            agent_id=entry.agent_id,
            provider=entry.provider,
            voice=entry.provider_voice_id,
            model=model,
            language=entry.language_code,
            text=text,
            config=config,
        )
        changes = {
            "audio_filename": filename,
            "imported": True,
            "transcript": text,
            "config": dict(config),
            "model": model,
            "cache_key": key,
        }
        return await self._replace(entry, wav, info, changes, "replace_with_settings")

    async def _replace(
        self,
        entry: Entry,
        wav: bytes,
        info: WavInfo,
        changes: dict[str, Any],
        reason: str | None = None,  # the replaced take goes into the history (None: lost)
    ) -> Entry:
        self.forget_recent()
        return await self.writer.update(
            entry, wav, info, changes, history=TakeChange(reason) if reason else None
        )

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

    async def open_audio(
        self, entry: Entry, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        return self.blobs.open_range(entry.blob_sha256, start, end)

    async def sweep(self) -> None:
        """Collect whatever deletes left queued (best effort; gc finishes any rest)."""
        await self.writer.sweep(None)

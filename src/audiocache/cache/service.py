"""The runtime side of the cache: lookup-or-synthesize, single flight, admission, warm-up.

The operators' side (list, replace, regenerate, pin, delete) is ``curation.py``.

Order of a write, everywhere: blob (durable) → row (commit) → make sure the blob is still
there (a concurrent sweep may have taken an identical one) → sweep what the row released.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from audiocache.audio.wav import WavInfo, parse_wav
from audiocache.cache.accounting import Accounting
from audiocache.cache.admission import admits, needs_counting, personal_skip, policy_for
from audiocache.cache.blob_writer import BlobWriter
from audiocache.cache.degraded import StorageDegradation
from audiocache.cache.hits import HitCounter
from audiocache.cache.keys import KeyParts
from audiocache.cache.leases import SynthesisLeases
from audiocache.cache.singleflight import SingleFlight
from audiocache.cache.streamed_miss import produce_streamed_miss
from audiocache.cache.streaming import SharedStream
from audiocache.cache.text import validate_text
from audiocache.cache.tuning import validate_tuning
from audiocache.cache.voices import VoiceLibrary, canonical_provider
from audiocache.errors import (
    InvalidVoice,
    NotFound,
    StorageUnavailable,
)
from audiocache.metrics import Metrics
from audiocache.models import AdmissionPolicy, Agent, Entry
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
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
        sweep_batch: int = 100,
        sweep_concurrency: int = 16,
    ) -> None:
        self.db = db
        self.writer = BlobWriter(
            db, entries, blobs, sweep_batch=sweep_batch, sweep_concurrency=sweep_concurrency
        )
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
        engine = self.engines.require(chosen.provider)
        await engine.validate_voice(chosen.voice_id)
        language = language if language is not None else agent.language_code
        key = KeyParts(
            agent_id=agent.id,
            provider=chosen.provider,
            voice=chosen.voice_id,
            model=engine.model_for(merged, chosen.voice_id),
            language=language,
            text=text,
            config=merged,
        ).key
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
        flags = {"warmed": True, **({"pinned": True} if pin else {})}
        if any(getattr(entry, name) != value for name, value in flags.items()):
            entry = await self.entries.set_flags(entry, **flags)
        return entry, created

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
            return await self.put_back(entry, audio, parse_wav(audio))
        except StorageUnavailable as exc:
            self.degraded.phrase_not_stored(exc, f"entry {entry.id}'s lost audio")
            return audio

    async def put_back(self, entry: Entry, wav: bytes, info: WavInfo) -> Entry:
        """Give an entry whose blob was lost its audio again (no take is kept: the lost one
        is not there to keep)."""
        self.forget_recent()
        return await self.writer.update(entry, wav, info, {}, history=None)

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

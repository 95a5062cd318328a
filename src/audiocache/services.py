"""Build every service from one Settings object; shared by the server and the CLI."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import SecretStr

from audiocache.auth import Authenticator
from audiocache.cache.agents import AgentService
from audiocache.cache.audit import AuditLog
from audiocache.cache.curation import Curation
from audiocache.cache.evictor import Evictor
from audiocache.cache.history import TakeHistory
from audiocache.cache.hits import HitCounter
from audiocache.cache.leases import LeaseTimings, SynthesisLeases
from audiocache.cache.service import CacheService
from audiocache.cache.signing import Signer
from audiocache.cache.tuning_audit import audit_stored_tuning
from audiocache.cache.variants import VariantCache
from audiocache.cache.voices import VoiceLibrary
from audiocache.cache.word_timings import WordTimings
from audiocache.config import Settings
from audiocache.metrics import Metrics
from audiocache.models import AdmissionPolicy, InstallationLimits, Limits, Ttl
from audiocache.storage.agents_repo import AgentRepository
from audiocache.storage.audit_repo import AuditRepository
from audiocache.storage.blobs.base import BlobStore, Presigning
from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.eviction_repo import EvictionRepository
from audiocache.storage.gc import sweep_pending
from audiocache.storage.keys_repo import ApiKeyRepository
from audiocache.storage.leases_repo import LeaseRepository
from audiocache.storage.lookups_repo import LookupRepository
from audiocache.storage.takes_repo import TakeRepository
from audiocache.storage.variants_repo import VariantRepository
from audiocache.storage.voices_repo import VoiceRepository
from audiocache.storage.word_timings_repo import WordTimingRepository
from audiocache.tts.base import Engine, EngineRegistry
from audiocache.tts.espeak import EspeakEngine
from audiocache.tts.pool import Budget, pooled

log = logging.getLogger("audiocache")
_frozen = False


def _freeze_startup_objects() -> None:
    """What the first start-up built (modules, the engines' objects, SQLAlchemy's caches)
    lives as long as the process: moved out of the garbage collector's sight, a full
    collection no longer walks it. Measured: collections set off by a burst of 200 refused
    misses stalled the event loop, and every hit waiting on it, by 100-170 ms; with this, by
    at most ~40 (bench/load.py). Once per process: what later starts leave stays collectable.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


@dataclass
class Services:
    settings: Settings
    db: Database
    blobs: BlobStore
    engines: EngineRegistry
    keys: ApiKeyRepository
    entries: EntryRepository
    authenticator: Authenticator
    cache: CacheService
    curation: Curation
    agents: AgentService
    voices: VoiceLibrary
    variants: VariantCache
    hits: HitCounter
    evictor: Evictor
    stats: LookupRepository
    metrics: Metrics
    history: TakeHistory
    audit: AuditLog
    word_timings: WordTimings

    async def start(self) -> None:
        """Migrate, finish deletes a crash interrupted, report stored tuning that is no
        longer valid, and start the hit flusher and the evictor."""
        await self.db.migrate()
        settings = self.settings
        swept = await sweep_pending(
            self.db,
            self.blobs,
            batch=settings.sweep_batch_size,
            concurrency=settings.sweep_delete_concurrency,
        )
        if swept:
            log.info("swept %d blobs left queued by an earlier run", swept)
        await audit_stored_tuning(self.db)
        for provider in self.engines.providers():
            engine = self.engines.get(provider)
            start = getattr(engine, "start", None)
            if start is not None:
                await start()
        _freeze_startup_objects()
        self.hits.start()
        self.evictor.start()
        self.audit.start()

    async def stop(self) -> None:
        await self.audit.stop()
        await self.evictor.stop()
        await self.hits.stop()
        await self.engines.close()
        await self.blobs.close()
        await self.db.close()


def build_services(
    settings: Settings,
    *,
    engines: list[Engine] | None = None,
    blobs: BlobStore | None = None,
) -> Services:
    db = Database(
        settings.resolved_database_url(),
        busy_timeout_seconds=settings.database_busy_timeout_seconds,
        read_threads=settings.database_read_threads,
        write_attempts=settings.database_write_attempts,
    )
    blob_store = blobs or blob_store_for(settings)
    check_offload(settings, blob_store)
    chosen = engines if engines is not None else default_engines(settings)
    metrics = Metrics()
    registry = EngineRegistry([pooled(e, engine_budget(settings, e), metrics) for e in chosen])
    keys = ApiKeyRepository(db)
    entries = EntryRepository(db, history_limit=settings.take_history_limit)
    stats = LookupRepository(db)
    hits = HitCounter(entries.add_hits, settings.hit_flush_seconds, write_lookups=stats.add)
    voices = VoiceLibrary(
        VoiceRepository(db),
        registry,
        blob_store,
        Signer(settings.resolved_signing_secret()),
        settings.sample_url_ttl_seconds,
    )
    cache = CacheService(
        db=db,
        entries=entries,
        blobs=blob_store,
        engines=registry,
        hits=hits,
        voices=voices,
        default_policy=AdmissionPolicy(
            "min_hits", settings.admission_min_hits, settings.admission_window_seconds
        ),
        default_provider=settings.default_provider,
        default_voice=settings.default_voice,
        max_text_chars=settings.max_text_chars,
        sweep_batch=settings.sweep_batch_size,
        sweep_concurrency=settings.sweep_delete_concurrency,
        leases=SynthesisLeases(
            LeaseRepository(db),
            LeaseTimings(
                ttl_seconds=settings.lease_seconds,
                poll_seconds=settings.lease_poll_seconds,
                wait_seconds=settings.lease_wait_seconds,
                max_waiters=settings.max_lease_waiters,
            ),
        ),
        metrics=metrics,
    )
    curation = Curation(
        writer=cache.writer,
        entries=entries,
        blobs=blob_store,
        engines=registry,
        hits=hits,
        accounting=cache.accounting,
        max_text_chars=settings.max_text_chars,
        forget_recent=cache.forget_recent,
    )
    eviction = EvictionRepository(db)
    evictor = Evictor(
        repo=eviction,
        curation=curation,
        installation=installation_limits(settings),
        interval_seconds=settings.eviction_interval_seconds,
        batch_size=settings.eviction_batch_size,
        on_evicted=metrics.evicted,
        lease=LeaseRepository(db),
        lease_seconds=settings.lease_seconds,
    )
    return Services(
        settings=settings,
        db=db,
        blobs=blob_store,
        engines=registry,
        keys=keys,
        entries=entries,
        authenticator=Authenticator(keys, settings.key_cache_seconds),
        cache=cache,
        curation=curation,
        agents=AgentService(AgentRepository(db), curation, eviction),
        voices=voices,
        variants=VariantCache(
            VariantRepository(db),
            blob_store,
            cache.degraded,
            concurrency=settings.transcode_concurrency,
        ),
        hits=hits,
        evictor=evictor,
        stats=stats,
        metrics=metrics,
        history=TakeHistory(curation, TakeRepository(db)),
        audit=AuditLog(
            AuditRepository(db),
            flush_seconds=settings.audit_flush_seconds,
            max_pending=settings.audit_queue_max,
            retention_days=settings.audit_retention_days,
            sweep_seconds=settings.audit_sweep_seconds,
        ),
        word_timings=WordTimings(WordTimingRepository(db), settings.max_word_timestamps),
    )


def installation_limits(settings: Settings) -> InstallationLimits:
    ttl = settings.eviction_ttl_seconds
    return InstallationLimits(
        agent=Limits(
            max_entries=settings.eviction_agent_max_entries,
            max_bytes=settings.eviction_agent_max_bytes,
            policy=settings.eviction_policy,
            ttls=(Ttl(ttl, settings.eviction_ttl_from),) if ttl is not None else (),
        ),
        total=Limits(
            max_entries=settings.eviction_total_max_entries,
            max_bytes=settings.eviction_total_max_bytes,
            policy=settings.eviction_policy,
        ),
    )


def blob_store_for(settings: Settings) -> BlobStore:
    """The S3 bucket of ``blob_url`` if set, else the local blob folder."""
    if settings.blob_url is None:
        return FilesystemBlobStore(settings.resolved_blob_dir())
    from audiocache.storage.blobs.s3 import S3BlobStore, S3Location

    secret = settings.s3_secret_access_key
    return S3BlobStore(
        S3Location.from_url(
            settings.blob_url,
            endpoint=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=secret.get_secret_value() if secret else None,
            timeout_seconds=settings.s3_timeout_seconds,
        )
    )


def check_offload(settings: Settings, blobs: BlobStore) -> None:
    """The settings refuse s3-presigned without an s3:// blob URL and keys; a store handed
    in (tests, embedding) is held to the same."""
    if settings.offload == "s3-presigned" and not isinstance(blobs, Presigning):
        raise ValueError("AUDIOCACHE_OFFLOAD=s3-presigned needs an S3 blob store")


def engine_budget(settings: Settings, engine: Engine) -> Budget:
    """The pool an engine runs in: every engine gets one (engines handed in by tests too)."""
    concurrency = settings.engine_concurrency(engine.provider)
    return Budget(
        concurrency=concurrency,
        queue_size=concurrency * settings.engine_queue_per_slot,
        start_timeout=settings.engine_start_timeout_seconds,
        run_timeout=settings.engine_synthesis_timeout_seconds,
    )


def default_engines(settings: Settings) -> list[Engine]:
    engines: list[Engine] = [
        EspeakEngine(
            settings.espeak_binary,
            threads=settings.engine_concurrency("espeak"),
            nice=settings.engine_nice,
        ),
        *cloud_engines(settings),
    ]
    if settings.piper_enabled:
        from audiocache.tts.piper import PiperEngine

        try:
            engines.append(
                PiperEngine(
                    threads=settings.engine_concurrency("piper"),
                    max_piece_chars=settings.piper_max_piece_chars,
                    nice=settings.engine_nice,
                )
            )
        except RuntimeError as exc:
            log.warning("piper unavailable: %s", exc)
    return engines


def cloud_engines(settings: Settings) -> list[Engine]:
    """One engine per cloud provider whose API key is configured."""
    from audiocache.tts import cloud

    policy = cloud.RetryPolicy(
        max_attempts=settings.cloud_max_attempts,
        deadline_seconds=settings.cloud_deadline_seconds,
        attempt_timeout_seconds=settings.cloud_attempt_timeout_seconds,
    )
    simple: dict[str, tuple[Callable[..., Engine], SecretStr | None]] = {
        "eleven_labs": (cloud.ElevenLabsEngine, settings.eleven_labs_api_key),
        "openai": (cloud.OpenAIEngine, settings.openai_api_key),
        "google": (cloud.GoogleEngine, settings.google_api_key),
        "cartesia": (cloud.CartesiaEngine, settings.cartesia_api_key),
    }
    engines: list[Engine] = []
    for provider, (engine_class, key) in simple.items():
        if key is not None:
            base_url = getattr(settings, f"{provider}_base_url")
            engines.append(engine_class(key.get_secret_value(), base_url=base_url, policy=policy))
    if settings.microsoft_api_key is not None:
        engines.append(
            cloud.MicrosoftEngine(
                settings.microsoft_api_key.get_secret_value(),
                region=settings.microsoft_region,
                base_url=settings.microsoft_base_url,
                policy=policy,
            )
        )
    return engines

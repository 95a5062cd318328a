"""Cache in front of a runtime's own TTS: a read-only lookup and a store of audio the runtime
synthesized itself, both under the canonical key of the runtime path (``cache/keys.py``).

A lookup is a question, not a use: it adds no hit, no admission count and no TTL refresh
(``last_hit_at`` only moves with hits), so a CI check or a plugin probing the cache does not
keep phrases alive or push them past admission. A store is one use of the phrase: it counts
toward admission exactly as a runtime-path miss would, and personal data is never stored.

The runtime may speak with a provider this server has no engine for (the plugin wraps, say,
a cloud TTS): the key then takes the model from the tuning's ``modelId`` (or "external"), the
same rule the details upload uses; with an engine it is the runtime path's key to the byte.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audiocache.audio.wav import parse_wav
from audiocache.cache.admission import admits, needs_counting, personal_skip, policy_for
from audiocache.cache.keys import KeyParts
from audiocache.cache.service import CacheService
from audiocache.cache.text import validate_text
from audiocache.cache.tuning import validate_tuning
from audiocache.errors import StorageUnavailable
from audiocache.models import Agent, Entry

log = logging.getLogger("audiocache.cache")
EXTERNAL_MODEL = "external"


@dataclass(frozen=True)
class StoreResult:
    entry: Entry | None
    created: bool  # False: it was cached already (idempotent) or not stored
    reason: str | None = None  # why it was not stored: personal_data, admission


async def key_parts(
    cache: CacheService,
    agent: Agent,
    text: str,
    *,
    voice: str | None = None,
    language: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> KeyParts:
    validate_text(text, cache.max_text_chars)
    chosen = await cache.resolve_voice(agent, voice)
    merged = {**chosen.config, **validate_tuning(config)}
    engine = cache.engines.get(chosen.provider)
    if engine is not None:
        await engine.validate_voice(chosen.voice_id)
        model = engine.model_for(merged, chosen.voice_id)
    else:
        model = str(merged.get("modelId") or EXTERNAL_MODEL)
    language = language if language is not None else agent.language_code
    return KeyParts(agent.id, chosen.provider, chosen.voice_id, model, language, text, merged)


async def lookup(cache: CacheService, agent: Agent, parts: KeyParts) -> Entry | None:
    """The stored entry for these parts, or None; touches nothing (no hit, count or TTL).

    An entry whose blob is gone is "not cached": restoring it would need a synthesis, which
    is the runtime's to do (and then to store)."""
    entry = await cache.entries.find_by_key(agent.id, parts.key)
    if entry is None or await cache.blobs.stat(entry.blob_sha256) is None:
        return None
    return entry


async def store(cache: CacheService, agent: Agent, parts: KeyParts, wav: bytes) -> StoreResult:
    """Store the runtime's own synthesis under ``parts`` if admission and privacy let it in.

    Idempotent: a phrase already cached is returned as it is (its audio is not replaced: the
    first take stays, as on the runtime path)."""
    info = parse_wav(wav)  # 400 on anything that is not a WAV we can serve
    reason = personal_skip(agent, parts.text)  # the agent's rule, as on the runtime path
    if reason is not None:
        cache.hits.lookups.privacy_skipped(agent.id, parts.provider)
        log.info("not storing a phrase for agent %s: personal data (%s)", agent.id, reason)
        return StoreResult(None, False, "personal_data")
    existing = await cache.entries.find_by_key(agent.id, parts.key)
    if existing is not None and await cache.blobs.stat(existing.blob_sha256) is not None:
        return StoreResult(existing, False)
    policy = policy_for(agent, cache.default_policy)
    requests = 0
    if needs_counting(policy):
        requests = await cache.entries.record_request(agent.id, parts.key, policy.window_seconds)
    if not admits(policy, requests):
        return StoreResult(None, False, "admission")
    if existing is not None:  # its audio was lost: the runtime's take puts it back
        entry = await cache.put_back(existing, wav, info)
        return StoreResult(entry, True)
    entry, created = await cache.writer.insert(
        {
            "agent_id": agent.id,
            "cache_key": parts.key,
            "transcript": parts.text,
            "provider": parts.provider,
            "provider_voice_id": parts.voice,
            "language_code": parts.language,
            "model": parts.model,
            "config": dict(parts.config),
        },
        wav,
        info,
    )
    if needs_counting(policy):
        try:
            await cache.entries.forget_request(agent.id, parts.key)
        except StorageUnavailable as exc:  # the entry is stored; a stale count is harmless
            log.warning("could not reset the request count of %s: %s", parts.key, exc.message)
    return StoreResult(entry, created)

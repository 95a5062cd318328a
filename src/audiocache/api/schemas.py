"""Wire shapes, named and cased as the Agents API 1.0.11 contract names them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from audiocache.cache.agents import EvictionPolicy
from audiocache.cache.eviction import MAX_BYTES, MAX_ENTRIES, MAX_TTL_SECONDS
from audiocache.cache.tuning import VoiceTuningConfig
from audiocache.models import Agent, Entry, Usage

__all__ = ["VoiceTuningConfig"]  # re-exported: the wire model lives in the domain


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SynthesizeAudioRequest(BaseModel):
    text: str
    config: VoiceTuningConfig
    language: str | None = Field(None, max_length=35)


class DetailsSettings(BaseModel):
    """The JSON inside the ``settings`` part of ``PUT …/details``."""

    text: str
    config: VoiceTuningConfig


BULK_DELETE_MAX_IDS = 20


class BulkDeleteAudioCacheRequest(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=BULK_DELETE_MAX_IDS)


class BulkDeleteAudioCacheResponse(BaseModel):
    deleted: list[str]
    failed: list[str]


class DeleteAudioCacheEntryResponse(BaseModel):
    success: bool


class AudioCacheEntry(BaseModel):
    id: str
    transcript: str
    cachedAt: datetime
    hitCount: int
    duration: float
    regenerated: bool
    provider: str
    providerVoiceId: str
    audioFilename: str | None = None
    imported: bool
    languageCode: str = ""
    pinned: bool = False
    lastHitAt: datetime | None = None  # audiocache extension, like pinned

    @classmethod
    def of(cls, entry: Entry) -> AudioCacheEntry:
        return cls(
            id=str(entry.id),
            transcript=entry.transcript,
            cachedAt=as_utc(entry.cached_at),
            hitCount=entry.hit_count,
            duration=round(entry.duration, 6),
            regenerated=entry.regenerated,
            provider=entry.provider,
            providerVoiceId=entry.provider_voice_id,
            audioFilename=entry.audio_filename,
            imported=entry.imported,
            languageCode=entry.language_code,
            pinned=entry.pinned,
            lastHitAt=as_utc(entry.last_hit_at) if entry.last_hit_at else None,
        )


class ListAudioCacheResponse(BaseModel):
    entries: list[AudioCacheEntry]
    totalCount: int


class ResponseSettings(_Strict):
    greeting: str = Field(min_length=1)
    languageCode: str = Field("en-GB", min_length=1, max_length=35)


class VoiceSettings(_Strict):
    voiceId: str = Field(min_length=1, max_length=200)


class LlmSettings(_Strict):
    modelId: str | None = Field(None, max_length=200)


class ExperimentalConfig(_Strict):
    configs: list[dict[str, Any]]


AGENT_ID_PATTERN = r"^[a-zA-Z0-9-]+$"


class CreateAgentBody(_Strict):
    name: str = Field(min_length=1, max_length=100)
    agentId: str | None = Field(None, pattern=AGENT_ID_PATTERN, min_length=1, max_length=128)
    responseSettings: ResponseSettings
    voiceSettings: VoiceSettings | None = None
    llmSettings: LlmSettings | None = None
    experimentalConfig: ExperimentalConfig | None = None


class DuplicateAgentBody(_Strict):
    newAgentId: str | None = Field(None, pattern=AGENT_ID_PATTERN, min_length=1, max_length=128)
    newAgentName: str = Field(min_length=1, max_length=100)


class AgentResponse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accountId: str
    agentId: str
    agentName: str
    createdAt: str
    updatedAt: str
    branchCount: float

    @classmethod
    def of(cls, agent: Agent) -> AgentResponse:
        return cls(
            accountId=agent.account_id,
            agentId=agent.public_id,
            agentName=agent.name,
            createdAt=as_utc(agent.created_at).isoformat(),
            updatedAt=as_utc(agent.updated_at).isoformat(),
            branchCount=agent.branch_count,
        )


class CacheUsage(BaseModel):
    entries: int
    bytes: int


class CachePolicy(_Strict):
    """audiocache's own: when a synthesized phrase is kept and when it goes (not part of the
    Agents API). ``null`` limits mean "no limit of the agent's own"; the installation's
    per-agent quota and TTL still apply, and an agent's limit can only tighten them."""

    admission: str = Field(description="default | always | never | min_hits")
    minHits: int | None = Field(None, ge=1, le=1_000_000)
    windowSeconds: int | None = Field(None, ge=1, le=366 * 86400)
    maxEntries: StrictInt | None = Field(
        None, ge=1, le=MAX_ENTRIES, description="Most entries kept."
    )
    maxBytes: StrictInt | None = Field(
        None, ge=1, le=MAX_BYTES, description="Most audio bytes kept."
    )
    eviction: Literal["lru", "lfu"] | None = Field(
        None, description="Which entries go first; null: the installation's default."
    )
    ttlSeconds: StrictInt | None = Field(None, ge=1, le=MAX_TTL_SECONDS)
    ttlFrom: Literal["cached", "last_hit"] | None = Field(
        None, description="TTL counts from cachedAt (null: the same) or the last hit."
    )
    personalData: Literal["skip", "cache"] = Field(
        "skip",
        description="Runtime paths (/tts, /v1/audio/speech): 'skip' (default) synthesizes a "
        "phrase that looks personal (digits, numbers, e-mail, URLs, money, dates, times, "
        "spelled codes) but never stores it or counts it toward admission; 'cache' treats it "
        "like any phrase. Uploads and warm-ups always store.",
    )
    evictedTotal: int | None = Field(
        None, description="Read-only: entries evicted so far (ignored in a PUT)."
    )
    usage: CacheUsage | None = Field(
        None, description="Read-only: what the agent's entries take now (ignored in a PUT)."
    )

    @classmethod
    def of(cls, agent: Agent, usage: Usage | None = None) -> CachePolicy:
        return cls(
            admission=agent.admission,
            minHits=agent.admission_min_hits,
            windowSeconds=agent.admission_window_seconds,
            maxEntries=agent.max_entries,
            maxBytes=agent.max_bytes,
            eviction=agent.eviction,
            ttlSeconds=agent.ttl_seconds,
            ttlFrom=agent.ttl_from,
            personalData="cache" if agent.personal_data == "cache" else "skip",
            evictedTotal=agent.evicted_total,
            usage=CacheUsage(entries=usage.entries, bytes=usage.bytes) if usage else None,
        )

    def eviction_policy(self) -> EvictionPolicy:
        return EvictionPolicy(
            self.maxEntries, self.maxBytes, self.eviction, self.ttlSeconds, self.ttlFrom
        )


class SpeakRequest(_Strict):
    """audiocache's runtime path: this text in this voice, from cache or synthesized once."""

    text: str
    voice: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=35)
    config: VoiceTuningConfig | None = None
    output_format: str | None = Field(
        None,
        max_length=32,
        description="wav (as stored, default), wav_8000…wav_48000, pcm_8000…pcm_48000, "
        "ulaw_8000, alaw_8000, wav_ulaw_8000, wav_alaw_8000",
    )
    stream: bool = Field(
        False,
        description="On a miss with an engine that streams, send audio as it is produced "
        "(WAV with placeholder sizes; no X-Audio-Cache-Entry-Id, the entry is stored once the "
        "synthesis completed).",
    )


class Error(BaseModel):
    success: bool = False
    error: str
    error_id: str
    error_code: str
    error_message: str
    data: None = None


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

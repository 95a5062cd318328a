"""An agent's cache stats (audiocache's own; ``cache/stats.py`` says what each figure is)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from audiocache.api.deps import ServicesDep, caller
from audiocache.api.docs import errors
from audiocache.cache.stats import MAX_TOP, AgentStats, Window, agent_stats
from audiocache.models import Principal
from audiocache.services import Services

router = APIRouter(prefix="/v1/agents/{agentId}/audio-cache", tags=["Audio Cache (audiocache)"])


class StatsWindow(BaseModel):
    lookups: int
    hits: int
    hitRatio: float | None = Field(description="hits / lookups; null without lookups")
    characterHitRatio: float | None = Field(
        description="characters of hits / characters looked up; null without lookups"
    )

    @classmethod
    def of(cls, w: Window) -> StatsWindow:
        return cls(
            lookups=w.lookups,
            hits=w.hits,
            hitRatio=w.hit_ratio,
            characterHitRatio=w.character_hit_ratio,
        )


class StatsWindows(BaseModel):
    hour: StatsWindow = Field(description="The current UTC clock hour so far")
    day: StatsWindow = Field(description="The current hour and the 23 before")
    month: StatsWindow = Field(description="The current hour and the 719 before (30 days)")


class TopPhraseOut(BaseModel):
    id: str
    transcript: str
    hitCount: int


class MoneySaved(BaseModel):
    currency: Literal["USD"] = "USD"
    total: float
    byProvider: dict[str, float]


class AudioCacheStats(BaseModel):
    entries: int
    bytes: int
    pinned: int
    windows: StatsWindows
    topPhrases: list[TopPhraseOut]
    charactersSaved: int = Field(description="Characters of runtime-path hits, all time")
    synthesisSecondsSaved: float = Field(
        description="Characters saved times the provider's measured average synthesis seconds "
        "per character (over this agent's timed syntheses)"
    )
    moneySaved: MoneySaved
    evictedTotal: int
    privacySkipped: int = Field(description="Phrases not stored because they held personal data")

    @classmethod
    def of(cls, s: AgentStats) -> AudioCacheStats:
        return cls(
            entries=s.entries,
            bytes=s.bytes,
            pinned=s.pinned,
            windows=StatsWindows(**{k: StatsWindow.of(w) for k, w in s.windows.items()}),
            topPhrases=[
                TopPhraseOut(id=str(p.id), transcript=p.transcript, hitCount=p.hit_count)
                for p in s.top_phrases
            ],
            charactersSaved=s.characters_saved,
            synthesisSecondsSaved=s.synthesis_seconds_saved,
            moneySaved=MoneySaved(total=sum(s.money_saved.values()), byProvider=s.money_saved),
            evictedTotal=s.evicted_total,
            privacySkipped=s.privacy_skipped,
        )


@router.get(
    "/stats",
    operation_id="getAudioCacheStats",
    summary="The agent's cache size, hit ratios (hour/day/30 days), top phrases and savings",
    response_model=AudioCacheStats,
    responses=errors(400, 401, 403, 404),
)
async def get_stats(
    agentId: str,
    top: Annotated[
        int, Query(ge=1, le=MAX_TOP, description=f"Top phrases to list (1-{MAX_TOP})")
    ] = 10,
    principal: Principal = caller("audio_cache:read"),
    services: Services = ServicesDep,
) -> AudioCacheStats:
    agent = await services.agents.owned(principal.account_id, agentId)
    stats = await agent_stats(
        services.stats,
        services.hits,
        agent,
        top=top,
        prices=services.settings.prices_usd_per_million_characters,
    )
    return AudioCacheStats.of(stats)

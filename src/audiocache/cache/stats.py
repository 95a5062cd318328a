"""An agent's stats: size, hit ratios over the last hour/day/30 days, top phrases, savings.

Sizes come from the per-agent usage counters and a partial index (no scan of the agent's
rows); ratios from the hourly lookup counts (``cache/lookups.py``). Windows are whole clock
hours in UTC: "hour" is the current hour so far, "day" it and the 23 before, "month" it and
the 719 before (30 days). Savings are all-time: characters served from the cache, the
synthesis seconds they would have cost at the provider's measured average seconds per
character (every synthesis is timed; a provider never timed for this agent counts 0), and
the money at ``prices_usd_per_million_characters``. Counts not yet flushed by this process
are added, so a reader sees its own lookups at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from audiocache.cache.hits import HitCounter
from audiocache.models import Agent
from audiocache.storage.lookups_repo import Counts, LookupRepository, hour_of

WINDOWS = {"hour": 1, "day": 24, "month": 30 * 24}  # hours, the current one included
MAX_TOP = 100


@dataclass(frozen=True)
class Window:
    lookups: int
    hits: int
    hit_ratio: float | None
    character_hit_ratio: float | None

    @classmethod
    def of(cls, counts: Counts) -> Window:
        return cls(
            counts.lookups,
            counts.hits,
            counts.hits / counts.lookups if counts.lookups else None,
            counts.hit_chars / counts.lookup_chars if counts.lookup_chars else None,
        )


@dataclass(frozen=True)
class TopPhrase:
    id: int
    transcript: str
    hit_count: int


@dataclass(frozen=True)
class AgentStats:
    entries: int
    bytes: int
    pinned: int
    windows: dict[str, Window]
    top_phrases: list[TopPhrase]
    characters_saved: int
    synthesis_seconds_saved: float
    money_saved: dict[str, float]  # by provider, USD
    evicted_total: int
    privacy_skipped: int


async def agent_stats(
    repo: LookupRepository,
    hits: HitCounter,
    agent: Agent,
    *,
    top: int,
    prices: Mapping[str, float],
) -> AgentStats:
    now = hour_of(hits.lookups.clock())
    async with hits.settled():
        usage, pinned = await repo.usage(agent.id)
        windows = {
            name: await repo.window(agent.id, now - timedelta(hours=hours - 1))
            for name, hours in WINDOWS.items()
        }
        totals = await repo.totals(agent.id)
        # Read more than asked: this process's unflushed hits can reorder the top.
        stored = await repo.top_phrases(agent.id, min(MAX_TOP, top) * 2)
        for hour, provider, counts in hits.lookups.pending_for(agent.id):
            for name, hours in WINDOWS.items():
                if hour >= now - timedelta(hours=hours - 1):
                    windows[name].add(counts)
            totals.setdefault(provider, Counts()).add(counts)
        phrases = sorted(
            (TopPhrase(i, t, n + hits.pending(i)) for i, t, n in stored),
            key=lambda p: (-p.hit_count, -p.id),
        )[:top]
    seconds_saved = 0.0
    money: dict[str, float] = {}
    for provider, counts in sorted(totals.items()):
        if counts.synthesis_chars:
            seconds_saved += counts.hit_chars * counts.synthesis_seconds / counts.synthesis_chars
        money[provider] = counts.hit_chars * prices.get(provider, 0.0) / 1_000_000
    return AgentStats(
        entries=usage.entries,
        bytes=usage.bytes,
        pinned=pinned,
        windows={name: Window.of(c) for name, c in windows.items()},
        top_phrases=phrases,
        characters_saved=sum(c.hit_chars for c in totals.values()),
        synthesis_seconds_saved=seconds_saved,
        money_saved=money,
        evicted_total=agent.evicted_total,
        privacy_skipped=sum(c.privacy_skipped for c in totals.values()),
    )

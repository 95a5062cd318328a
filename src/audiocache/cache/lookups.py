"""Runtime-path lookups counted in memory per agent, hour and provider, written in batches.

Every lookup of the runtime path (``CacheService.speak``) adds one to its agent's current
clock hour: lookups, hits, and the characters of each, so the stats can give a plain and a
character-weighted hit ratio over the last hour, day and 30 days. Syntheses add their
measured time and characters, which gives each provider's average synthesis seconds per
character; a hit saves that much. The counts ride with the hit counter's flush
(``cache/hits.py``): one upsert per touched (agent, hour, provider) a second, never a write
per request. A crash loses at most one flush interval, like the hit counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from audiocache.storage.db import utcnow
from audiocache.storage.lookups_repo import Counts, Key, hour_of


@dataclass
class LookupCounter:
    """Pending counts, handed to ``write`` by ``flush``. ``clock`` (naive UTC) places a
    lookup in its hour and ``timer`` (seconds) times syntheses: tests replace both."""

    clock: Callable[[], datetime] = utcnow
    timer: Callable[[], float] = time.perf_counter
    _pending: dict[Key, Counts] = field(default_factory=dict)
    _hour: tuple[float, datetime] = (0.0, datetime.min)  # the real clock's: (until, hour)

    def _counts(self, agent_id: str, provider: str) -> Counts:
        key = (agent_id, self._current_hour(), provider)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = Counts()
        return counts

    def _current_hour(self) -> datetime:
        """The clock's hour; the real clock's worked out once an hour, not per lookup (UTC
        hours begin on whole multiples of 3,600 epoch seconds)."""
        if self.clock is not utcnow:
            return hour_of(self.clock())
        now = time.time()
        until, hour = self._hour
        if now >= until:
            hour = hour_of(self.clock())
            self._hour = ((now // 3600 + 1) * 3600, hour)
        return hour

    def lookup(self, agent_id: str, provider: str, characters: int, hit: bool) -> None:
        counts = self._counts(agent_id, provider)
        counts.lookups += 1
        counts.lookup_chars += characters
        if hit:
            counts.hits += 1
            counts.hit_chars += characters

    def synthesized(self, agent_id: str, provider: str, characters: int, seconds: float) -> None:
        counts = self._counts(agent_id, provider)
        counts.syntheses += 1
        counts.synthesis_chars += characters
        counts.synthesis_seconds += seconds

    def privacy_skipped(self, agent_id: str, provider: str) -> None:
        """A phrase synthesized but not stored because it held personal data."""
        self._counts(agent_id, provider).privacy_skipped += 1

    def take(self) -> dict[Key, Counts]:
        batch, self._pending = self._pending, {}
        return batch

    def give_back(self, batch: Mapping[Key, Counts]) -> None:
        """A batch whose write failed: kept for the next flush rather than lost."""
        for key, counts in batch.items():
            self._pending.setdefault(key, Counts()).add(counts)

    def pending_for(self, agent_id: str) -> Iterable[tuple[datetime, str, Counts]]:
        return [(hour, p, c) for (a, hour, p), c in self._pending.items() if a == agent_id]

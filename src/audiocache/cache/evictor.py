"""The background evictor: every interval, each agent's limits, then the installation's cap.

Never on the request path. Victims go through ``CacheService.delete_entries`` (rows and
queued blobs in one transaction, then the sweep), in batches of at most ``batch_size``.
Several instances may run it at once: a victim deleted by one is simply not found by the
other, and only what a run deleted is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from audiocache.cache.curation import Curation
from audiocache.cache.eviction import choose_victims, expired, limits_for
from audiocache.models import Candidate, InstallationLimits, Limits, Usage
from audiocache.storage.db import utcnow
from audiocache.storage.eviction_repo import EvictionRepository

log = logging.getLogger("audiocache.eviction")


@dataclass
class EvictionCounters:
    """Since the process started; for logs and a later /metrics."""

    runs: int = 0
    failed_runs: int = 0
    evicted_entries: int = 0
    evicted_bytes: int = 0
    expired_entries: int = 0  # of evicted_entries, those a TTL removed
    last_run_seconds: float = 0.0


@dataclass
class RunReport:
    agents: int = 0
    evicted_entries: int = 0
    evicted_bytes: int = 0
    expired_entries: int = 0


class Evictor:
    def __init__(
        self,
        *,
        repo: EvictionRepository,
        curation: Curation,
        installation: InstallationLimits,
        interval_seconds: float,
        batch_size: int,
        now: Callable[[], datetime] = utcnow,
        on_evicted: Callable[[int], None] | None = None,
    ) -> None:
        self.repo = repo
        self.on_evicted = on_evicted  # the metrics' eviction counter
        self.curation = curation
        self.installation = installation
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.now = now
        self.counters = EvictionCounters()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> RunReport:
        started = time.perf_counter()
        now = self.now()
        report = RunReport()
        # Hits this process has not written yet would make recently used entries look idle.
        try:
            await self.curation.hits.flush()
        except Exception:  # counts stay queued; evicting on slightly old ones is harmless
            log.warning("hit flush before eviction failed", exc_info=True)
        for agent in await self.repo.agents():
            limits = limits_for(agent, self.installation)
            if limits.active:
                report.agents += 1
                await self._evict(agent.id, limits, now, report)
        if self.installation.total.bounded:
            await self._evict(None, self.installation.total, now, report)
        elapsed = time.perf_counter() - started
        self.counters.runs += 1
        self.counters.evicted_entries += report.evicted_entries
        if self.on_evicted is not None:
            self.on_evicted(report.evicted_entries)
        self.counters.evicted_bytes += report.evicted_bytes
        self.counters.expired_entries += report.expired_entries
        self.counters.last_run_seconds = elapsed
        log.info(
            "eviction run: %d entries (%d bytes, %d expired) evicted, %d agents checked, %.3f s",
            report.evicted_entries,
            report.evicted_bytes,
            report.expired_entries,
            report.agents,
            elapsed,
        )
        return report

    async def _evict(
        self, agent_id: str | None, limits: Limits, now: datetime, report: RunReport
    ) -> None:
        while True:
            usage = await self.repo.usage(agent_id) if limits.bounded else Usage(0, 0)
            found = await self.repo.candidates(agent_id, limits, now, self.batch_size)
            victims = choose_victims(limits, usage, found, now)
            if not victims:
                return
            deleted = await self._delete(victims)
            for victim in deleted:
                report.evicted_entries += 1
                report.evicted_bytes += victim.size_bytes
                report.expired_entries += expired(victim, limits.ttls, now)
            if not deleted or len(victims) < len(found) or len(found) < self.batch_size:
                return

    async def _delete(self, victims: list[Candidate]) -> list[Candidate]:
        by_agent: dict[str, list[Candidate]] = defaultdict(list)
        for victim in victims:
            by_agent[victim.agent_id].append(victim)
        deleted: list[Candidate] = []
        for agent_id, group in by_agent.items():
            ids = set(
                await self.curation.delete_entries(agent_id, [v.id for v in group], evicting=True)
            )
            deleted += [v for v in group if v.id in ids]
        return deleted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="evictor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.run_once()
            except Exception:
                self.counters.failed_runs += 1
                log.exception("eviction run failed; will retry")

"""The background evictor: every interval, each agent's limits, then the installation's cap.

Never on the request path. Victims go through ``CacheService.delete_entries`` (rows and
queued blobs in one transaction, then the sweep), in batches of at most ``batch_size``.

One evictor at a time across instances: a run first takes the ``evictor`` lease in the
lease table (``storage/leases_repo.py``, on SQLite and PostgreSQL alike), renews it while it
works and releases it at the end. An instance whose run finds it held skips that run; one
killed mid-run stops renewing, and its lease expires after ``lease_seconds``. Were two to
run anyway (a lease that expired under a stalled holder), a victim deleted by one is simply
not found by the other, and only what a run deleted is counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from audiocache.cache.background import BackgroundLoop
from audiocache.cache.curation import Curation
from audiocache.cache.eviction import choose_victims, expired, limits_for
from audiocache.errors import StorageUnavailable
from audiocache.models import Candidate, InstallationLimits, Limits, Usage
from audiocache.storage.db import utcnow
from audiocache.storage.eviction_repo import EvictionRepository
from audiocache.storage.leases_repo import LeaseRepository

log = logging.getLogger("audiocache.eviction")
# The lease row of the evictor: no agent id is empty, and no cache key is a word.
LEASE_AGENT, LEASE_KEY = "", "evictor"


@dataclass
class EvictionCounters:
    """Since the process started; for logs and a later /metrics."""

    runs: int = 0
    failed_runs: int = 0
    skipped_runs: int = 0  # another instance held the evictor lease
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
    skipped: bool = False  # another instance was evicting: this run did nothing


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
        lease: LeaseRepository | None = None,
        lease_seconds: float = 10.0,
        holder: str = "",
    ) -> None:
        self.repo = repo
        self.lease = lease  # None: no lease (one instance only)
        self.lease_seconds = lease_seconds
        self.holder = holder or f"evictor:{uuid.uuid4().hex}"
        self.on_evicted = on_evicted  # the metrics' eviction counter
        self.curation = curation
        self.installation = installation
        self.interval_seconds = interval_seconds
        self.batch_size = batch_size
        self.now = now
        self.counters = EvictionCounters()
        self._background = BackgroundLoop("evictor", self._loop)

    async def run_once(self) -> RunReport:
        """One run, unless another instance holds the evictor lease (then skipped)."""
        if self.lease is None:
            return await self._run()
        try:
            mine = await self.lease.try_acquire(
                LEASE_AGENT, LEASE_KEY, self.holder, self.lease_seconds, now=self.now()
            )
        except StorageUnavailable as exc:  # nothing to evict with: the next run tries again
            log.warning("eviction lease unavailable (%s); run skipped", exc)
            mine = False
        if not mine:
            self.counters.skipped_runs += 1
            return RunReport(skipped=True)
        renewer = asyncio.create_task(self._renew(self.lease), name="evictor-lease")
        try:
            return await self._run()
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            try:
                await self.lease.release(LEASE_AGENT, LEASE_KEY, self.holder)
            except StorageUnavailable as exc:  # it expires by itself
                log.warning("could not release the eviction lease: %s", exc)

    async def _renew(self, lease: LeaseRepository) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await lease.renew(
                    LEASE_AGENT, LEASE_KEY, self.holder, self.lease_seconds, now=self.now()
                )
            except StorageUnavailable as exc:
                log.warning("could not renew the eviction lease: %s", exc)

    async def _run(self) -> RunReport:
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
        self._background.start()

    async def stop(self) -> None:
        await self._background.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.run_once()
            except Exception:
                self.counters.failed_runs += 1
                log.exception("eviction run failed; will retry")

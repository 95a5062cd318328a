"""The audit log off the request path: events held in memory, written in batches, and
deleted once older than the retention.

Like hit counts (``cache/hits.py``): a request only appends its event; a background task
writes what gathered every ``flush_seconds`` in one transaction. The queue is bounded: a
request that finds ``max_pending`` events waiting writes them itself before it goes on
(back-pressure rather than loss). A crash loses at most one interval of events; a failed
write keeps them for the next try, up to the bound, past which the oldest are dropped and
counted (``dropped``) and logged. A read of the log writes this process's pending events
first, so it sees every write this process answered before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from audiocache.cache.background import BackgroundLoop
from audiocache.models import AuditEvent, AuditQuery
from audiocache.storage.audit_repo import AuditRepository
from audiocache.storage.db import utcnow

log = logging.getLogger("audiocache.audit")
SWEEP_BATCH = 1000  # rows per retention delete: one short transaction each


class AuditLog:
    def __init__(
        self,
        repo: AuditRepository,
        *,
        flush_seconds: float = 1.0,
        max_pending: int = 1000,
        retention_days: int = 90,
        sweep_seconds: float = 3600.0,
        sweep_batch: int = SWEEP_BATCH,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.repo = repo
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.retention = timedelta(days=retention_days)
        self.sweep_seconds = sweep_seconds
        self.sweep_batch = sweep_batch
        self.clock = clock  # naive UTC; tests turn it
        self.dropped = 0  # events lost to failed writes past the bound
        self._pending: list[AuditEvent] = []
        self._lock = asyncio.Lock()
        self._background = BackgroundLoop("audit-log", self._loop)
        self.swept = asyncio.Event()  # set after each background sweep (tests wait on it)

    def now(self) -> datetime:
        return self.clock()

    async def record(self, event: AuditEvent) -> None:
        self._pending.append(event)
        if len(self._pending) >= self.max_pending:
            await self.flush()

    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        async with self._lock:
            if not self._pending:
                return 0
            batch, self._pending = self._pending, []
            try:
                await self.repo.add(batch)
            except Exception:
                self._keep(batch)
                raise
            return len(batch)

    def _keep(self, batch: list[AuditEvent]) -> None:
        """A batch that failed to write goes back in front, within the bound."""
        kept = batch + self._pending
        overflow = len(kept) - self.max_pending
        if overflow > 0:
            self.dropped += overflow
            log.error("audit log write failing: %d oldest events dropped", overflow)
            kept = kept[overflow:]
        self._pending = kept

    async def page(self, account_id: str, query: AuditQuery) -> tuple[list[AuditEvent], int]:
        await self.flush()
        return await self.repo.page(account_id, query)

    async def sweep(self) -> int:
        """Delete events older than the retention, batch by batch; returns how many."""
        cutoff = self.now() - self.retention
        deleted = 0
        while True:
            gone = await self.repo.delete_before(cutoff, self.sweep_batch)
            deleted += gone
            if gone < self.sweep_batch:
                return deleted

    def start(self) -> None:
        self._background.start()

    async def stop(self) -> None:
        await self._background.stop()
        try:
            await self.flush()
        except Exception:
            log.exception("final audit log flush failed; this interval's events are lost")

    async def _loop(self) -> None:
        next_sweep = time.monotonic()  # once at start, then every sweep_seconds
        while True:
            try:
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + self.sweep_seconds
                    swept = await self.sweep()
                    if swept:
                        log.info("audit log: %d events past the retention deleted", swept)
                    self.swept.set()
                await self.flush()
            except Exception:
                log.exception("audit log flush or sweep failed; will retry")
            await asyncio.sleep(self.flush_seconds)

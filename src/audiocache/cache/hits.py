"""Hit counting off the request path: counted in memory, written in batches.

A crash loses at most one flush interval of counts, never audio or entries.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from audiocache.cache.background import BackgroundLoop
from audiocache.cache.lookups import LookupCounter
from audiocache.storage.db import utcnow
from audiocache.storage.lookups_repo import Counts, Key

log = logging.getLogger("audiocache.hits")

Writer = Callable[[Mapping[int, int], datetime], Awaitable[None]]
LookupWriter = Callable[[Mapping[Key, Counts]], Awaitable[None]]


class HitCounter:
    def __init__(
        self,
        write: Writer,
        interval_seconds: float = 1.0,
        *,
        lookups: LookupCounter | None = None,
        write_lookups: LookupWriter | None = None,
    ) -> None:
        self._write = write
        # The runtime path's lookup counts (``cache/lookups.py``) ride with each flush.
        self.lookups = lookups or LookupCounter()
        self._write_lookups = write_lookups
        self.interval_seconds = interval_seconds
        self._pending: Counter[int] = Counter()
        self._background = BackgroundLoop("hit-counter-flush", self._loop)
        # Held while a batch is between memory and the database, so readers that add
        # pending counts to stored ones (``settled``) never see a batch in neither place.
        self._lock = asyncio.Lock()

    def add(self, entry_id: int, n: int = 1) -> None:
        self._pending[entry_id] += n

    def pending(self, entry_id: int) -> int:
        return self._pending.get(entry_id, 0)

    def settled(self) -> asyncio.Lock:
        """``async with hits.settled():`` read stored counts, then add ``pending``."""
        return self._lock

    async def flush(self) -> int:
        async with self._lock:
            await self._flush_lookups()
            if not self._pending:
                return 0
            batch, self._pending = self._pending, Counter()
            try:
                await self._write(batch, utcnow())
            except Exception:
                # Keep the counts for the next try rather than lose them on a passing error.
                self._pending.update(batch)
                raise
        return sum(batch.values())

    async def _flush_lookups(self) -> None:
        if self._write_lookups is None:
            return
        lookups = self.lookups.take()
        if not lookups:
            return
        try:
            await self._write_lookups(lookups)
        except Exception:
            self.lookups.give_back(lookups)
            raise

    def start(self) -> None:
        self._background.start()

    async def stop(self) -> None:
        await self._background.stop()
        try:
            await self.flush()
        except Exception:
            # Shutting down goes on (engines and the database still need closing); the
            # counts of this last interval are lost, as a crash would lose them.
            log.exception("final hit count flush failed; this interval's counts are lost")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                await self.flush()
            except Exception:
                log.exception("hit count flush failed; will retry")

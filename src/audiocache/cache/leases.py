"""Single flight across instances: the in-process flight's leader takes a lease in the
database before it synthesizes; a leader that finds the phrase leased elsewhere waits for
that instance's entry instead of synthesizing it again.

A holder renews its lease while it works; one that dies (``kill -9``) stops renewing, its
lease expires after ``ttl_seconds`` and a waiter takes over. Nobody waits longer than
``wait_seconds``: past it a waiter synthesizes on its own (a duplicate, never a hang).
At most ``max_waiters`` flights of one instance wait at once (each polls the database);
one more is refused with ``LeaseWaitersBusy`` (503 + Retry-After) before it waits.
If the database cannot be reached the lease is skipped (fail open): synthesis is the
request's point, and the flight within this process still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from audiocache.errors import LeaseWaitersBusy, StorageUnavailable
from audiocache.storage.leases_repo import LeaseRepository

log = logging.getLogger("audiocache.cache")
T = TypeVar("T")


@dataclass(frozen=True)
class LeaseTimings:
    ttl_seconds: float = 10.0
    poll_seconds: float = 0.05
    wait_seconds: float = 130.0
    max_waiters: int = 32


@dataclass(frozen=True)
class _Over(Generic[T]):
    found: T | None  # what lead_or_wait returns


class SynthesisLeases:
    def __init__(self, repo: LeaseRepository, timings: LeaseTimings | None = None) -> None:
        self.repo = repo
        self.timings = timings or LeaseTimings()
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.waits = 0  # times this instance waited for another's synthesis (tests, metrics)
        self.waiting = 0  # flights waiting right now (at most timings.max_waiters)
        self.refused = 0  # flights refused because max_waiters were waiting

    async def lead_or_wait(
        self, agent_id: str, cache_key: str, stored: Callable[[], Awaitable[T | None]]
    ) -> T | None:
        """None once this instance holds the lease (the caller synthesizes, then
        ``release``s), or what ``stored`` found after another instance finished."""
        deadline = time.monotonic() + self.timings.wait_seconds
        waited = False
        while True:
            try:
                if await self.repo.try_acquire(
                    agent_id, cache_key, self.holder, self.timings.ttl_seconds
                ):
                    if waited:
                        # The other instance gave up its lease without storing (admission,
                        # degraded storage) or died: look once more, else synthesize.
                        found = await stored()
                        if found is not None:
                            await self.release(agent_id, cache_key)
                            return found
                    return None
            except StorageUnavailable as exc:
                log.warning("synthesis lease unavailable (%s); synthesizing without", exc)
                return None
            if not waited:
                if self.waiting >= self.timings.max_waiters:
                    self.refused += 1
                    raise LeaseWaitersBusy(
                        f"this instance already waits for {self.waiting} phrases other "
                        "instances are synthesizing; try again later",
                        retry_after=max(1.0, self.timings.ttl_seconds / 3),
                    )
                self.waits += 1
                waited = True
            self.waiting += 1
            try:
                over = await self._wait(agent_id, cache_key, stored, deadline)
            finally:
                self.waiting -= 1
            if over is not None:
                return over.found

    async def _wait(
        self,
        agent_id: str,
        cache_key: str,
        stored: Callable[[], Awaitable[T | None]],
        deadline: float,
    ) -> _Over[T] | None:
        """Poll until the entry is there (or waiting is over): None once the lease is free
        to be taken, else the result of ``lead_or_wait``."""
        while True:
            await asyncio.sleep(self.timings.poll_seconds)
            found = await stored()
            if found is not None:
                return _Over(found)
            if time.monotonic() > deadline:
                log.warning(
                    "waited %.0f s for %s; synthesizing", self.timings.wait_seconds, cache_key
                )
                return _Over(None)
            try:
                if not await self.repo.is_live(agent_id, cache_key):
                    return None  # released or expired: try to take it
            except StorageUnavailable:
                return _Over(None)

    @contextlib.asynccontextmanager
    async def renewed(self, agent_id: str, cache_key: str) -> AsyncIterator[None]:
        """Keep the lease alive while the block runs, and release it afterwards."""
        renewer = asyncio.create_task(self._renew(agent_id, cache_key), name="lease-renewer")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            await self.release(agent_id, cache_key)

    async def _renew(self, agent_id: str, cache_key: str) -> None:
        while True:
            await asyncio.sleep(self.timings.ttl_seconds / 3)
            try:
                await self.repo.renew(agent_id, cache_key, self.holder, self.timings.ttl_seconds)
            except StorageUnavailable as exc:
                log.warning("could not renew the synthesis lease of %s: %s", cache_key, exc)

    async def release(self, agent_id: str, cache_key: str) -> None:
        try:
            await self.repo.release(agent_id, cache_key, self.holder)
        except StorageUnavailable as exc:  # it expires by itself
            log.warning("could not release the synthesis lease of %s: %s", cache_key, exc)

"""Single flight: concurrent calls for one key share one execution.

The work runs in its own task, shielded from the callers, so a caller that goes away
(a hung-up phone line) neither cancels the synthesis for the others nor leaves it half done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Flight(Generic[T]):
    task: asyncio.Task[T]
    callers: int = 1


class SingleFlight(Generic[T]):
    def __init__(self) -> None:
        self._flights: dict[Hashable, Flight[T]] = {}

    def callers(self, key: Hashable) -> int:
        flight = self._flights.get(key)
        return flight.callers if flight else 0

    async def run(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``work`` once per key at a time; returns (result, whether this call led)."""
        flight = self._flights.get(key)
        leader = flight is None
        if flight is None:
            task: asyncio.Task[T] = asyncio.ensure_future(work())
            flight = Flight(task)
            self._flights[key] = flight
            task.add_done_callback(lambda _t: self._flights.pop(key, None))
        else:
            flight.callers += 1
        return await asyncio.shield(flight.task), leader

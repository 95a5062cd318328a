"""An engine behind a budget: so many syntheses at once, so many waiting, so long to wait.

``pooled(engine, budget)`` wraps any engine and is itself an engine (and a streaming one
when the wrapped engine streams), so the cache never talks to an unbounded engine. A call
takes a slot (at most ``concurrency`` run at once) or waits in a FIFO queue of at most
``queue_size``; a full queue, or a wait longer than ``start_timeout``, raises
``EngineBusy`` (503 + Retry-After) before any work starts. The work itself may take
``run_timeout``; past it, it is cancelled (the engine stops what it can: a subprocess is
killed, Piper stops after the piece in progress) and ``SynthesisTimeout`` is raised, so
nothing half-done reaches the cache. A stream holds its slot until it ends or is closed.

The slot is given back only once the wrapped call has returned, cancelled or not, so the
limit is on work really running, not on callers still waiting for an answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from audiocache.errors import EngineBusy, SynthesisTimeout
from audiocache.tts.base import Engine, StreamingEngine, SynthesisRequest


class PoolObserver(Protocol):
    """What a pool reports (``audiocache.metrics.Metrics`` implements it)."""

    def synthesized(self, provider: str, characters: int, seconds: float) -> None: ...

    def engine_load(self, provider: str, waiting: int, running: int) -> None: ...


class _Unobserved:
    def synthesized(self, provider: str, characters: int, seconds: float) -> None:
        pass

    def engine_load(self, provider: str, waiting: int, running: int) -> None:
        pass


@dataclass(frozen=True)
class Budget:
    concurrency: int
    queue_size: int
    start_timeout: float
    run_timeout: float

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.queue_size < 0:
            raise ValueError("an engine budget needs concurrency >= 1 and queue_size >= 0")


class EnginePool:
    """An engine with a concurrency limit, a bounded wait queue and two deadlines."""

    def __init__(self, engine: Engine, budget: Budget) -> None:
        self.engine = engine
        self.budget = budget
        self.provider = engine.provider
        self.running = 0
        self.refused = 0  # calls answered EngineBusy so far
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._seconds = 1.0  # moving average of one call's duration, for Retry-After
        self.observer: PoolObserver = _Unobserved()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    # -- the engine interface ----------------------------------------------------------

    def model_for(self, config: Mapping[str, Any], voice: str) -> str:
        return self.engine.model_for(config, voice)

    async def validate_voice(self, voice: str) -> None:
        await self.engine.validate_voice(voice)

    async def start(self) -> None:
        start = getattr(self.engine, "start", None)
        if start is not None:
            await start()

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        async with self.slot(len(request.text)):
            try:
                async with asyncio.timeout(self.budget.run_timeout) as deadline:
                    return await self.engine.synthesize(request)
            except TimeoutError:
                if deadline.expired():
                    raise self._timed_out() from None
                raise

    async def close(self) -> None:
        await self.engine.close()

    # -- slots ---------------------------------------------------------------------------

    @asynccontextmanager
    async def slot(self, characters: int = 0) -> AsyncIterator[None]:
        """Hold one of the engine's slots for the block (waiting for one if need be)."""
        try:
            await self._acquire()
        finally:
            self._report_load()
        began = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - began
            self._seconds = 0.8 * self._seconds + 0.2 * held
            self._release()
            self._report_load()
            self.observer.synthesized(self.provider, characters, held)

    def _report_load(self) -> None:
        self.observer.engine_load(self.provider, len(self._waiters), self.running)

    async def _acquire(self) -> None:
        if self.running < self.budget.concurrency and not self._waiters:
            self.running += 1
            return
        if len(self._waiters) >= self.budget.queue_size:
            raise self._busy("its queue is full")
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(granted)
        self._report_load()
        try:
            async with asyncio.timeout(self.budget.start_timeout):
                await asyncio.shield(granted)
        except BaseException as exc:
            if granted.done():  # the slot came as we gave up: pass it on
                self._release()
            else:
                granted.cancel()
                self._waiters.remove(granted)
            if isinstance(exc, TimeoutError):
                raise self._busy(
                    f"no slot came free within {self.budget.start_timeout:g} s"
                ) from None
            raise

    def _release(self) -> None:
        # The slot goes straight to the first waiter, so a newcomer cannot overtake the queue.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1

    def _busy(self, why: str) -> EngineBusy:
        self.refused += 1
        ahead = self.running + len(self._waiters)
        wait = self._seconds * ahead / self.budget.concurrency
        return EngineBusy(
            f"The {self.provider} engine is at capacity ({self.running} running, "
            f"{len(self._waiters)} waiting): {why}; try again later",
            retry_after=float(min(60, max(1, math.ceil(wait)))),
        )

    def _timed_out(self) -> SynthesisTimeout:
        return SynthesisTimeout(
            f"The {self.provider} engine did not finish within "
            f"{self.budget.run_timeout:g} s; nothing was stored"
        )


class StreamingEnginePool(EnginePool):
    """A pool around an engine that streams raw PCM (``stream`` + ``sample_rate_for``)."""

    def __init__(self, engine: StreamingEngine, budget: Budget) -> None:
        super().__init__(engine, budget)
        self.streaming_engine = engine

    def sample_rate_for(self, voice: str) -> int:
        return self.streaming_engine.sample_rate_for(voice)

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        async with self.slot(len(request.text)):
            deadline = asyncio.get_running_loop().time() + self.budget.run_timeout
            chunks = self.streaming_engine.stream(request)
            try:
                while True:
                    # The deadline guards only the engine's own awaits, never the consumer's
                    # code between chunks (a timeout there would cancel the wrong thing).
                    try:
                        async with asyncio.timeout_at(deadline) as timer:
                            chunk = await anext(chunks)
                    except StopAsyncIteration:
                        return
                    except TimeoutError:
                        if timer.expired():
                            raise self._timed_out() from None
                        raise
                    yield chunk
            finally:
                close = getattr(chunks, "aclose", None)
                if close is not None:
                    await close()


def pooled(engine: Engine, budget: Budget, observer: PoolObserver | None = None) -> EnginePool:
    """``engine`` behind ``budget``; an engine already pooled is returned as it is."""
    if isinstance(engine, EnginePool):
        pool = engine
    elif isinstance(engine, StreamingEngine):
        pool = StreamingEnginePool(engine, budget)
    else:
        pool = EnginePool(engine, budget)
    if observer is not None:
        pool.observer = observer
    return pool

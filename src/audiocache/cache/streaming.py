"""One synthesis, many listeners: a miss streamed to every caller as the engine produces it.

The producer task keeps every chunk, so a listener that joins late replays from the start.
It runs apart from the listeners: one that hangs up stops only its own copy, and when the
last one hangs up before the end the synthesis is cancelled, so nothing is stored. Audio is
stored only after the engine finished; ``listen`` ends after that, so a caller that has the
last byte can already find the entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class SharedStream:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.chunks: list[bytes] = []
        self.listeners = 1
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.task: asyncio.Task[None] | None = None
        self._listening = 0
        self._changed = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        if chunk:
            self.chunks.append(chunk)
            self._wake()

    def finish(self, result: Any) -> None:
        self.result, self.done = result, True
        self._wake()

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def listen(self) -> AsyncIterator[bytes]:
        """Every chunk from the first; raises the producer's error if it failed."""
        position = 0
        self._listening += 1
        try:
            while True:
                changed = self._changed
                while position < len(self.chunks):
                    yield self.chunks[position]
                    position += 1
                if self.done:
                    if self.error is not None:
                        raise self.error
                    return
                await changed.wait()
        finally:
            self._listening -= 1
            if self._listening == 0 and not self.done and self.task is not None:
                self.task.cancel()  # everybody hung up: nobody needs the rest

    async def started(self) -> None:
        """Wait for the first chunk; raise the producer's error if it failed before any
        (an engine that is busy or cannot start: the caller gets an error, not a cut stream)."""
        while not self.chunks and not self.done:
            await self._changed.wait()
        if not self.chunks and self.error is not None:
            raise self.error

    async def wait(self) -> Any:
        """Wait for the end; the producer's result, or its error raised."""
        async for _chunk in self.listen():
            pass
        return self.result

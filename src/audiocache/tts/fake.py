"""A deterministic in-process engine for tests and benchmarks.

It counts calls, can be slowed down, held (``gate``) or made to fail, and produces a
distinct tone per text so tests can tell audio apart. It passes the same engine tests as
the real ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from audiocache.audio.wav import build_wav
from audiocache.errors import InvalidVoice, SynthesisFailed
from audiocache.tts.base import SynthesisRequest


class FakeEngine:
    def __init__(
        self,
        provider: str = "fake",
        *,
        delay_seconds: float = 0.0,
        sample_rate: int = 16000,
        voices: tuple[str, ...] = ("alpha", "beta"),
        model: str = "fake-1",
    ) -> None:
        self.provider = provider
        self.delay_seconds = delay_seconds
        self.sample_rate = sample_rate
        self.voices = voices
        self.model = model
        self.calls: list[SynthesisRequest] = []
        self.fail_next: int = 0
        # While a gate is set and closed, every synthesis waits for it to open (so tests can
        # fill an engine pool); ``active``/``max_active`` count syntheses under way.
        self.gate: asyncio.Event | None = None
        self.active = 0
        self.max_active = 0

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self.model)

    async def validate_voice(self, voice: str) -> None:
        if voice not in self.voices:
            raise InvalidVoice(f"fake engine has no voice {voice!r}")

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        self.calls.append(request)
        async with self._working():
            if self.delay_seconds:
                await asyncio.sleep(self.delay_seconds)
            if self.fail_next > 0:
                self.fail_next -= 1
                raise SynthesisFailed("fake engine failure (on request)")
        return build_wav(tone_for(request, self.sample_rate), sample_rate=self.sample_rate)

    @contextlib.asynccontextmanager
    async def _working(self) -> AsyncIterator[None]:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.gate is not None:
                await self.gate.wait()
            yield
        finally:
            self.active -= 1

    async def close(self) -> None:
        return None


def tone_for(request: SynthesisRequest, sample_rate: int) -> bytes:
    """About 60 ms of audio per character, at a pitch derived from the whole request."""
    seed = hashlib.sha256(
        repr(
            (request.text, request.voice, request.language, sorted(request.config.items()))
        ).encode()
    ).digest()
    frequency = 200 + seed[0] * 4
    frames = max(1, len(request.text)) * sample_rate * 60 // 1000
    samples = (
        round(8000 * math.sin(2 * math.pi * frequency * n / sample_rate)) for n in range(frames)
    )
    return struct.pack(f"<{frames}h", *samples)


class StreamingFakeEngine(FakeEngine):
    """A FakeEngine that also streams: the tone in ``chunks`` pieces, ``chunk_delay`` apart;
    ``fail_after_chunks`` makes it break mid-stream."""

    def __init__(self, *args: Any, chunks: int = 5, chunk_delay: float = 0.02, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.chunks = chunks
        self.chunk_delay = chunk_delay
        self.fail_after_chunks: int | None = None
        self.streams = 0
        self.finished_at: float | None = None  # when the last stream ended (monotonic)

    def sample_rate_for(self, voice: str) -> int:
        return self.sample_rate

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        await self.validate_voice(request.voice)
        self.calls.append(request)
        self.streams += 1
        pcm = tone_for(request, self.sample_rate)
        size = -(-len(pcm) // self.chunks)
        size += size % 2
        async with self._working():
            for index, offset in enumerate(range(0, len(pcm), size)):
                if self.fail_after_chunks is not None and index >= self.fail_after_chunks:
                    raise SynthesisFailed("fake engine broke mid-stream (on request)")
                await asyncio.sleep(self.chunk_delay)
                yield pcm[offset : offset + size]
        self.finished_at = time.monotonic()

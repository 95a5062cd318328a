"""The Pipecat wrapper in a real Pipecat pipeline (``pipecat.tests.utils.run_test``) against
a live audiocache: hits stream cached audio as frames, a miss runs the wrapped service once,
is forwarded live and stored once complete, an interrupted utterance is never stored, and a
broken or slow cache fails open (counted) within the lookup budget."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncGenerator, Sequence

import numpy as np
import pytest
from live_cache import BACKENDS, LiveCache

with warnings.catch_warnings():  # pipecat imports audioop, deprecated in 3.11 (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("pipecat")
    from pipecat.frames.frames import (
        EndFrame,
        Frame,
        InterruptionFrame,
        TTSAudioRawFrame,
        TTSSpeakFrame,
        TTSStartedFrame,
        TTSStoppedFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.services.tts_service import TTSService
    from pipecat.tests.utils import QueuedFrameProcessor, run_test
    from pipecat.workers.runner import WorkerRunner

from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.pipecat import CachedTTSService

RATE = 16000


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"  # the round trip runs on both (below); the rest is not about storage


def tone(seconds: float, freq: float = 330.0, amplitude: float = 8000.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


class CountingTTS(TTSService):
    """A wrapped service: a tone per text in 4 frames, counting its calls. With ``hold``, it
    stops after its first frame until released (a synthesis still running)."""

    def __init__(self, seconds: float = 0.2) -> None:
        super().__init__(sample_rate=RATE)
        self.seconds = seconds
        self.calls: list[str] = []
        self.hold: asyncio.Event | None = None
        self.first_frame = asyncio.Event()
        self.finished: list[str] = []

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self.calls.append(text)
        pcm = tone(self.seconds)
        quarter = len(pcm) // 4
        for i in range(4):
            yield TTSAudioRawFrame(pcm[i * quarter : (i + 1) * quarter], RATE, 1, context_id)
            self.first_frame.set()
            if self.hold is not None:
                await self.hold.wait()
        self.finished.append(text)


def audio(frames: Sequence[Frame]) -> bytes:
    return b"".join(f.audio for f in frames if isinstance(f, TTSAudioRawFrame))


async def speak(service: CachedTTSService, *texts: str) -> Sequence[Frame]:
    down, _up = await run_test(service, frames_to_send=[TTSSpeakFrame(t) for t in texts])
    return down


@pytest.mark.parametrize("backend", BACKENDS)
async def test_miss_runs_wrapped_once_is_stored_then_hits_stream_from_cache(
    live_cache: LiveCache,
) -> None:
    wrapped = CountingTTS()
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0))
    live = await speak(service, "Welcome to the bank.")
    assert wrapped.calls == ["Welcome to the bank."]
    assert audio(live) == tone(0.2)
    assert any(isinstance(f, TTSStartedFrame) for f in live)
    assert any(isinstance(f, TTSStoppedFrame) for f in live)
    await service.drain()
    assert service.stats.stored == 1
    (entry,) = await live_cache.entries()
    assert entry["transcript"] == "Welcome to the bank."

    again = CachedTTSService(CountingTTS(), live_cache.client(budget=2.0))
    cached = await speak(again, "Welcome  to the bank.")
    assert again._wrapped.calls == []  # type: ignore[attr-defined]
    assert again.stats.hits == 1 and again.stats.stored == 0
    assert audio(cached) == tone(0.2)  # the stored take, sample for sample
    chunks = [f for f in cached if isinstance(f, TTSAudioRawFrame)]
    assert len(chunks) == 10 and all(f.sample_rate == RATE for f in chunks)  # 20 ms frames
    assert len(await live_cache.entries()) == 1


async def speak_interrupted(service: CachedTTSService, text: str, cut: asyncio.Event) -> None:
    """``text`` through a pipeline (Pipecat's worker and the queue processor of its test
    utilities), an ``InterruptionFrame`` once ``cut`` is set, the ``EndFrame`` once that
    interruption has passed the service (``run_test`` sends its frames blind, and an
    ``EndFrame`` right behind an interruption races Pipecat's own reset of the service)."""
    received: asyncio.Queue[Frame] = asyncio.Queue()
    sink = QueuedFrameProcessor(queue=received, queue_direction=FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(Pipeline([service, sink]), cancel_on_idle_timeout=False)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: object, _frame: Frame) -> None:
        started.set()

    async def drive() -> None:
        await started.wait()
        await worker.queue_frame(TTSSpeakFrame(text))
        await cut.wait()
        await worker.queue_frame(InterruptionFrame())  # as the user's speech arrives
        while not isinstance(await received.get(), InterruptionFrame):
            pass
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive())


async def test_interrupted_utterance_is_never_stored(live_cache: LiveCache) -> None:
    wrapped = CountingTTS()
    wrapped.hold = asyncio.Event()  # never set: the synthesis is still running when cut
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0))
    await speak_interrupted(service, "Please hold the line.", wrapped.first_frame)
    await service.drain()
    assert wrapped.calls == ["Please hold the line."] and wrapped.finished == []
    assert service.stats.stored == 0 and service.stats.misses == 1
    assert service.stats.fail_open == 0
    assert await live_cache.entries() == []
    cache = live_cache.client(budget=2.0)
    assert await cache.lookup(Phrase("Please hold the line.")) is None


async def test_cache_error_fails_open_and_is_counted(live_cache: LiveCache) -> None:
    wrapped = CountingTTS()
    service = CachedTTSService(wrapped, live_cache.client(key="not-a-key"))
    frames = await speak(service, "Hello there.")
    await service.drain()
    assert audio(frames) == tone(0.2) and wrapped.calls == ["Hello there."]
    # the lookup (401) and the store (401) both failed open
    assert service.stats.fail_open == 2 and service.stats.stored == 0


async def test_unreachable_cache_fails_open(closed_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=closed_url) as http:
        wrapped = CountingTTS()
        service = CachedTTSService(wrapped, AudioCacheClient(http, "bot"))
        frames = await speak(service, "Hello there.")
        await service.drain()
    assert audio(frames) == tone(0.2) and wrapped.calls == ["Hello there."]
    assert service.stats.fail_open == 2 and service.stats.hits == 0


async def test_lookup_slower_than_the_default_budget_fails_open_in_time(stalled_url: str) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=stalled_url) as http:
        cache = AudioCacheClient(http, "bot")  # the default budget: 50 ms
        assert cache.lookup_budget_s == 0.050
        wrapped = CountingTTS()
        service = CachedTTSService(wrapped, cache, max_pending_stores=0)
        started = time.monotonic()
        frames = await speak(service, "Thanks for waiting.")
        elapsed = time.monotonic() - started
    assert audio(frames) == tone(0.2) and wrapped.calls == ["Thanks for waiting."]
    assert service.stats.fail_open >= 1 and service.stats.hits == 0
    # The stalled lookup was given up after its budget: the whole pipeline run (start,
    # one sentence, end) took nowhere near the seconds a stalled cache would cost.
    assert elapsed < 1.5, elapsed

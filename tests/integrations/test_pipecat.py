"""The Pipecat wrapper: hits from the cache, misses live then stored, fail-open, interruptions."""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator

import numpy as np
import pytest
from support import Api

with warnings.catch_warnings():  # pipecat imports audioop, deprecated in 3.11 (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("pipecat")
    from pipecat.frames.frames import Frame, TTSAudioRawFrame
    from pipecat.services.tts_service import TTSService

from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.pipecat import CachedTTSService

AGENT = "bot"
RATE = 16000


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


class CountingTTS(TTSService):
    """A wrapped service that yields a tone in 4 frames and counts its calls."""

    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)
        self.calls: list[str] = []

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self.calls.append(text)
        t = np.arange(RATE // 5) / RATE
        pcm = np.rint(8000 * np.sin(2 * np.pi * 330 * t)).astype("<i2").tobytes()
        quarter = len(pcm) // 4
        for i in range(4):
            yield TTSAudioRawFrame(pcm[i * quarter : (i + 1) * quarter], RATE, 1, context_id)


async def collect(service: CachedTTSService, text: str) -> list[Frame]:
    return [f async for f in service.run_tts(text, "ctx") if f is not None]


def audio_of(frames: list[Frame]) -> bytes:
    return b"".join(f.audio for f in frames if isinstance(f, TTSAudioRawFrame))


async def make(api: Api, budget: float = 5.0) -> tuple[CachedTTSService, CountingTTS]:
    await api.create_agent(AGENT)
    wrapped = CountingTTS()
    cache = AudioCacheClient(api.client, AGENT, api_key=api.key, lookup_budget_s=budget)
    return CachedTTSService(wrapped, cache), wrapped


async def test_miss_goes_live_is_stored_then_hits_from_cache(api: Api) -> None:
    service, wrapped = await make(api)
    live = await collect(service, "Welcome to the bank.")
    assert wrapped.calls == ["Welcome to the bank."] and len(live) == 4
    await service.drain()
    assert service.stats.stored == 1
    cached = await collect(service, "Welcome  to the bank.")
    assert wrapped.calls == ["Welcome to the bank."]  # not called again
    assert service.stats.hits == 1
    assert audio_of(cached) == audio_of(live)


async def test_interrupted_utterance_is_never_stored(api: Api) -> None:
    service, _wrapped = await make(api)
    gen = service.run_tts("Please hold the line.", "ctx")
    await gen.__anext__()
    await gen.aclose()  # what an interruption does to the generator
    await service.drain()
    assert service.stats.stored == 0
    assert await service.cache.lookup(Phrase("Please hold the line.")) is None


async def test_cache_error_fails_open_and_is_counted(api: Api) -> None:
    service, wrapped = await make(api)
    service.cache = AudioCacheClient(api.client, AGENT, api_key="bad", lookup_budget_s=5.0)
    frames = await collect(service, "Hello.")
    assert len(frames) == 4 and wrapped.calls == ["Hello."]
    assert service.stats.fail_open >= 1


async def test_lookup_over_budget_fails_open(api: Api) -> None:
    service, wrapped = await make(api, budget=1e-6)  # no HTTP round trip fits in 1 µs
    frames = await collect(service, "Thanks for waiting.")
    assert len(frames) == 4 and wrapped.calls == ["Thanks for waiting."]
    assert service.stats.fail_open == 1 and service.stats.hits == 0

"""The LiveKit wrapper (synthesize): hits from the cache, misses live then stored, fail-open."""

from __future__ import annotations

import numpy as np
import pytest
from support import Api

pytest.importorskip("livekit.agents")

from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from audiocache.integrations.client import AudioCacheClient
from audiocache.integrations.livekit import CachedTTS

AGENT = "bot"
RATE = 16000


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


class CountingTTS(tts.TTS):
    def __init__(self) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False), sample_rate=RATE, num_channels=1
        )
        self.calls: list[str] = []

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.calls.append(text)
        return _Tone(tts=self, input_text=text, conn_options=conn_options)


class _Tone(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        t = np.arange(RATE // 2) / RATE
        pcm = np.rint(8000 * np.sin(2 * np.pi * 330 * t)).astype("<i2").tobytes()
        output_emitter.initialize(
            request_id="r1", sample_rate=RATE, num_channels=1, mime_type="audio/pcm"
        )
        output_emitter.push(pcm)
        output_emitter.flush()


async def pcm_of(service: tts.TTS, text: str) -> bytes:
    async with service.synthesize(text) as stream:
        return b"".join([event.frame.data.tobytes() async for event in stream])


async def make(api: Api, budget: float = 5.0) -> tuple[CachedTTS, CountingTTS]:
    await api.create_agent(AGENT)
    wrapped = CountingTTS()
    cache = AudioCacheClient(api.client, AGENT, api_key=api.key, lookup_budget_s=budget)
    return CachedTTS(wrapped, cache), wrapped


async def test_miss_goes_live_is_stored_then_hits_from_cache(api: Api) -> None:
    service, wrapped = await make(api)
    live = await pcm_of(service, "Welcome to the bank.")
    # 0.5 s of int16; LiveKit's emitter pads the last frame with silence
    assert wrapped.calls == ["Welcome to the bank."] and RATE <= len(live) < RATE * 11 // 10
    await service.drain()
    assert service.stats.stored == 1 and service.stats.misses == 1
    cached = await pcm_of(service, "Welcome to  the bank.")
    assert wrapped.calls == ["Welcome to the bank."]
    assert service.stats.hits == 1 and cached[: len(live)] == live


async def test_lookup_over_budget_fails_open(api: Api) -> None:
    service, wrapped = await make(api, budget=1e-6)
    assert len(await pcm_of(service, "Hello.")) >= RATE
    assert wrapped.calls == ["Hello."] and service.stats.fail_open == 1

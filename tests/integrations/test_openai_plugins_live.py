"""``POST /v1/audio/speech`` as the frameworks' own OpenAI TTS services call it, offline,
against a live audiocache: LiveKit's ``openai.TTS(base_url=…)`` (MP3, decoded by LiveKit)
and Pipecat's ``OpenAITTSService(base_url=…)`` (24 kHz PCM in a pipeline). The first call
synthesizes and stores the phrase, the second is served from the cache: one entry, the same
audio."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pytest
from live_cache import LiveCache

pytest.importorskip("livekit.plugins.openai")
with warnings.catch_warnings():  # pipecat imports audioop, deprecated in 3.11 (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame
    from pipecat.services.openai.tts import OpenAITTSService
    from pipecat.tests.utils import run_test

from livekit.plugins import openai as livekit_openai


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"  # the speech endpoint's storage is tested in tests/api


def samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2")


async def test_livekit_openai_tts_against_the_speech_endpoint(live_cache: LiveCache) -> None:
    service = livekit_openai.TTS(
        base_url=f"{live_cache.url}/v1", api_key=live_cache.key, model=live_cache.agent
    )
    text = "Thank you for calling the bank."

    async def say() -> tuple[bytes, int]:
        async with service.synthesize(text) as stream:
            frames = [event.frame async for event in stream]
        return b"".join(f.data.tobytes() for f in frames), frames[0].sample_rate

    first, rate = await say()
    (entry,) = await live_cache.entries()
    assert entry["transcript"] == text and entry["hitCount"] == 0
    second, _rate = await say()
    assert rate == 24000
    assert len(await live_cache.entries()) == 1
    # The fake engine's audio at 0.12 s a word; MP3 adds a little padding at the ends.
    assert abs(len(samples(second)) / rate - entry["duration"]) < 0.1
    assert np.abs(samples(second)).max() > 1000
    assert first == second  # the hit is the stored MP3 variant, decoded the same way
    await service.aclose()


async def test_pipecat_openai_tts_service_against_the_speech_endpoint(
    live_cache: LiveCache,
) -> None:
    text = "Please hold while we find an agent."

    async def say() -> Sequence[Frame]:
        service = OpenAITTSService(
            base_url=f"{live_cache.url}/v1",
            api_key=live_cache.key,
            settings=OpenAITTSService.Settings(model=live_cache.agent, voice="alloy"),
        )
        down, _up = await run_test(service, frames_to_send=[TTSSpeakFrame(text)])
        return down

    first = [f for f in await say() if isinstance(f, TTSAudioRawFrame)]
    (entry,) = await live_cache.entries()
    assert entry["transcript"] == text
    second = [f for f in await say() if isinstance(f, TTSAudioRawFrame)]
    assert len(await live_cache.entries()) == 1
    assert {f.sample_rate for f in second} == {24000}
    pcm = b"".join(f.audio for f in second)
    assert pcm == b"".join(f.audio for f in first)
    assert abs(len(samples(pcm)) / 24000 - entry["duration"]) < 0.02
    assert np.abs(samples(pcm)).max() > 1000

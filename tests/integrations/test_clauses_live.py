"""Clause mode in both plugins against a live audiocache: a cached clause (recorded at
another level) and a live one are joined without a loudness jump (within ±3 dB), without a
click (faded to zero at every join) and with the fixed pause; each clause is cached on its
own, as the engine spoke it."""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator

import numpy as np
import pytest
from live_cache import LiveCache
from support import sine_wav

pytest.importorskip("livekit.agents")
with warnings.catch_warnings():  # pipecat imports audioop, deprecated in 3.11 (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    from pipecat.frames.frames import Frame, TTSAudioRawFrame, TTSSpeakFrame
    from pipecat.services.tts_service import TTSService
    from pipecat.tests.utils import run_test

from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from audiocache.audio.joins import DEFAULT_PAUSE_MS, level_db
from audiocache.integrations.client import Phrase
from audiocache.integrations.livekit import CachedTTS
from audiocache.integrations.pipecat import CachedTTSService

RATE = 16000
TEXT = "Welcome to the bank, how can I help you today?"
CACHED, LIVE = "Welcome to the bank,", "how can I help you today?"
PAUSE = RATE * DEFAULT_PAUSE_MS // 1000


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


def loud(seconds: float = 0.4) -> bytes:
    """The live engine today: 12 dB louder than the take in the cache."""
    t = np.arange(int(RATE * seconds)) / RATE
    return np.rint(8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()


async def seed_quiet_clause(live_cache: LiveCache) -> None:
    quiet = sine_wav(0.3, rate=RATE, freq=300.0)  # amplitude 8000 ...
    pcm = (np.frombuffer(quiet[44:], dtype="<i2") // 4).astype("<i2")  # ... now 2000
    wav = quiet[:44] + pcm.tobytes()
    stored = await live_cache.client(budget=2.0).store(Phrase(CACHED), wav)
    assert stored.created


def check_joined(pcm: bytes) -> None:
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.int32)
    first_len = int(0.3 * RATE)
    first, pause = audio[:first_len], audio[first_len : first_len + PAUSE]
    second = audio[first_len + PAUSE : first_len + PAUSE + int(0.4 * RATE)]
    assert len(second) == int(0.4 * RATE)
    assert not pause.any()  # the fixed pause, exactly
    # Played as they came, the two would be 12 dB apart; joined, within ±3 dB.
    assert abs(level_db(first.astype(np.int16)) - level_db(second.astype(np.int16))) <= 3.0
    # No click: each clause starts and ends at (near) zero, however its wave stood there.
    for clause in (first, second):
        assert abs(clause[0]) < 50 and abs(clause[-1]) < 50
    steps = np.abs(np.diff(audio[: first_len + PAUSE + len(second)]))
    assert steps.max() <= np.abs(np.diff(second)).max()  # no step bigger than the wave's own


async def check_cached_raw(live_cache: LiveCache) -> None:
    """The live clause is cached as the engine spoke it (the join's gain is not stored)."""
    wav = await live_cache.client(budget=2.0).lookup(Phrase(LIVE), output_format=f"wav_{RATE}")
    assert wav is not None and wav[44:] == loud()


class LoudLiveKitTTS(tts.TTS):
    def __init__(self) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False), sample_rate=RATE, num_channels=1
        )
        self.calls: list[str] = []

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.calls.append(text)
        return _Loud(tts=self, input_text=text, conn_options=conn_options)


class _Loud(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        output_emitter.initialize(
            request_id="r", sample_rate=RATE, num_channels=1, mime_type="audio/pcm"
        )
        output_emitter.push(loud())
        output_emitter.flush()


async def test_livekit_clause_mode_joins_cached_and_live_clauses(live_cache: LiveCache) -> None:
    await seed_quiet_clause(live_cache)
    wrapped = LoudLiveKitTTS()
    service = CachedTTS(wrapped, live_cache.client(budget=2.0), clauses=True)

    async def say(on: CachedTTS) -> bytes:
        async with on.synthesize(TEXT) as stream:
            return b"".join([e.frame.data.tobytes() async for e in stream])

    first = await say(service)
    assert wrapped.calls == [LIVE]
    assert service.stats.hits == 1 and service.stats.misses == 1
    check_joined(first)
    await service.drain()
    await check_cached_raw(live_cache)
    fresh = LoudLiveKitTTS()
    again = CachedTTS(fresh, live_cache.client(budget=2.0), clauses=True)
    assert await say(again) == first and fresh.calls == []  # both clauses from the cache now


class LoudPipecatTTS(TTSService):
    def __init__(self) -> None:
        super().__init__(sample_rate=RATE)
        self.calls: list[str] = []

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self.calls.append(text)
        pcm = loud()
        half = len(pcm) // 2
        yield TTSAudioRawFrame(pcm[:half], RATE, 1, context_id)
        yield TTSAudioRawFrame(pcm[half:], RATE, 1, context_id)


async def test_pipecat_clause_mode_joins_cached_and_live_clauses(live_cache: LiveCache) -> None:
    await seed_quiet_clause(live_cache)
    wrapped = LoudPipecatTTS()
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0), clauses=True)
    down, _up = await run_test(service, frames_to_send=[TTSSpeakFrame(TEXT)])
    pcm = b"".join(f.audio for f in down if isinstance(f, TTSAudioRawFrame))
    assert wrapped.calls == [LIVE]
    check_joined(pcm)
    await service.drain()
    await check_cached_raw(live_cache)

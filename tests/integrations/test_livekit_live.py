"""The LiveKit wrapper against a live audiocache, driven through LiveKit's own TTS interfaces
as an ``AgentSession``'s TTS node drives them: ``synthesize()`` and ``stream()`` (tokens
pushed, sentences split by LiveKit's tokenizer), a hit from the cache without the wrapped
TTS, a miss once then stored, an interrupted stream (``aclose``) never stored, word
timestamps (``TimedString``) kept and replayed, and a broken or stalled cache failing open."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np
import pytest
from live_cache import BACKENDS, LiveCache

pytest.importorskip("livekit.agents")

from livekit.agents import tts
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    USERDATA_TIMED_TRANSCRIPT,
    APIConnectOptions,
)
from livekit.agents.voice.io import TimedString

from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.livekit import CachedTTS

RATE = 16000


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"  # the round trip runs on both (below); the rest is not about storage


def tone(text: str) -> bytes:
    """A tone of its own per text (so a sentence's audio says which text it is), 0.1 s a
    word."""
    freq = 200 + 10 * (sum(map(ord, text)) % 40)
    t = np.arange(int(RATE * 0.1 * len(text.split()))) / RATE
    return np.rint(8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()


class CountingTTS(tts.TTS):
    """The wrapped TTS: a tone per text in 4 pushes, counting its calls; ``aligned``: it
    times each word (0.1 s apart), as an aligned-transcript TTS does; ``hold``: it stops
    after its first push until released (a synthesis still running)."""

    def __init__(self, aligned: bool = False) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False, aligned_transcript=aligned),
            sample_rate=RATE,
            num_channels=1,
        )
        self.calls: list[str] = []
        self.finished: list[str] = []
        self.hold: asyncio.Event | None = None
        self.first_push = asyncio.Event()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.calls.append(text)
        return _Tone(tts=self, input_text=text, conn_options=conn_options)


class _Tone(tts.ChunkedStream):
    _tts: CountingTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner, text = self._tts, self._input_text
        output_emitter.initialize(
            request_id="r1", sample_rate=RATE, num_channels=1, mime_type="audio/pcm"
        )
        if owner.capabilities.aligned_transcript:
            output_emitter.push_timed_transcript(
                [
                    TimedString(word, start_time=0.1 * i, end_time=0.1 * i + 0.08)
                    for i, word in enumerate(text.split())
                ]
            )
        pcm = tone(text)
        quarter = len(pcm) // 4
        for i in range(4):
            output_emitter.push(pcm[i * quarter : (i + 1) * quarter])
            owner.first_push.set()
            if owner.hold is not None:
                await owner.hold.wait()
        output_emitter.flush()
        owner.finished.append(text)


def words_of(frames: list[tts.SynthesizedAudio]) -> list[tuple[str, float, float]]:
    return [
        (str(w), round(w.start_time, 3), round(w.end_time, 3))
        for f in frames
        for w in f.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    ]


def pcm(frames: list[tts.SynthesizedAudio]) -> bytes:
    return b"".join(f.frame.data.tobytes() for f in frames)


async def synthesize(service: tts.TTS, text: str) -> list[tts.SynthesizedAudio]:
    async with service.synthesize(text) as stream:
        return [event async for event in stream]


async def stream(service: tts.TTS, tokens: list[str]) -> list[tts.SynthesizedAudio]:
    """As the agent's TTS node: tokens as the LLM streams them, then end of input."""
    async with service.stream() as s:
        for token in tokens:
            s.push_text(token)
        s.end_input()
        return [event async for event in s]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_synthesize_miss_once_stored_then_hit_from_the_cache(live_cache: LiveCache) -> None:
    wrapped = CountingTTS()
    service = CachedTTS(wrapped, live_cache.client(budget=2.0))
    live = await synthesize(service, "Welcome to the bank.")
    assert wrapped.calls == ["Welcome to the bank."]
    assert pcm(live)[: len(tone("Welcome to the bank."))] == tone("Welcome to the bank.")
    await service.drain()
    assert service.stats.stored == 1 and service.stats.misses == 1
    (entry,) = await live_cache.entries()
    assert entry["transcript"] == "Welcome to the bank."

    fresh = CountingTTS()
    again = CachedTTS(fresh, live_cache.client(budget=2.0))
    cached = await synthesize(again, "Welcome to  the bank.")
    assert fresh.calls == [] and again.stats.hits == 1
    assert pcm(cached)[: len(tone("Welcome to the bank."))] == tone("Welcome to the bank.")


async def test_stream_splits_sentences_each_cached_on_its_own(live_cache: LiveCache) -> None:
    # (LiveKit's tokenizer joins sentences under 20 characters to the next one)
    tokens = ["Good morning ", "and thanks for calling. ", "Welcome ", "to the ", "bank ", "of "]
    tokens += ["Springfield. ", "How can I help you today?"]
    sentences = [
        "Good morning and thanks for calling.",
        "Welcome to the bank of Springfield.",
        "How can I help you today?",
    ]
    # One sentence is cached already (stored by an earlier call), the others are not.
    warm = CachedTTS(CountingTTS(), live_cache.client(budget=2.0))
    await synthesize(warm, sentences[1])
    await warm.drain()

    wrapped = CountingTTS()
    service = CachedTTS(wrapped, live_cache.client(budget=2.0))
    first = await stream(service, tokens)
    assert wrapped.calls == [sentences[0], sentences[2]]
    assert service.stats.hits == 1 and service.stats.misses == 2
    await service.drain()
    assert service.stats.stored == 2
    audio, spoken = pcm(first), b"".join(tone(s) for s in sentences)
    # cached and live sentences back to back; LiveKit's emitter ends a segment with 10 ms of
    # silence (its end marker)
    assert audio.startswith(spoken) and not any(audio[len(spoken) :])
    # One timed string per sentence, at the sentence's start (the transcript sync's input).
    assert [(w, s) for w, s, _e in words_of_starts(first)] == [
        (sentences[0], 0.0),
        (sentences[1], 0.6),
        (sentences[2], 1.2),
    ]

    fresh = CountingTTS()
    again = CachedTTS(fresh, live_cache.client(budget=2.0))
    second = await stream(again, tokens)
    assert fresh.calls == [] and again.stats.hits == 3
    assert pcm(second) == pcm(first)


def words_of_starts(frames: list[tts.SynthesizedAudio]) -> list[tuple[str, float, object]]:
    return [
        (str(w), round(w.start_time, 3), w.end_time)
        for f in frames
        for w in f.frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, [])
    ]


async def test_interrupted_stream_is_never_stored(live_cache: LiveCache) -> None:
    wrapped = CountingTTS()
    wrapped.hold = asyncio.Event()  # never set: the synthesis is still running when cut
    service = CachedTTS(wrapped, live_cache.client(budget=2.0))
    s = service.stream()
    s.push_text("Please hold the line.")
    s.end_input()
    await wrapped.first_push.wait()
    await s.aclose()  # what the agent does to the TTS stream when the user barges in
    await service.drain()
    assert wrapped.calls == ["Please hold the line."] and wrapped.finished == []
    assert service.stats.stored == 0 and service.stats.fail_open == 0
    assert await live_cache.entries() == []
    assert await live_cache.client(budget=2.0).lookup(Phrase("Please hold the line.")) is None


async def test_word_timestamps_are_kept_and_replayed_on_hits(live_cache: LiveCache) -> None:
    wrapped = CountingTTS(aligned=True)
    service = CachedTTS(wrapped, live_cache.client(budget=2.0))
    tokens = ["Thanks for ", "waiting on the line. ", "Your call ", "matters to us."]
    live = await stream(service, tokens)
    await service.drain()
    assert service.stats.stored == 2
    words = ["Thanks", "for", "waiting", "on", "the", "line."]
    words += ["Your", "call", "matters", "to", "us."]
    # 0.1 s a word; the second sentence starts 0.6 s in, after the first one's audio
    expected = [(w, round(0.1 * i, 3), round(0.1 * i + 0.08, 3)) for i, w in enumerate(words)]
    assert expected[6] == ("Your", 0.6, 0.68)
    assert words_of(live) == expected

    fresh = CountingTTS(aligned=True)
    again = CachedTTS(fresh, live_cache.client(budget=2.0))
    cached = await stream(again, tokens)
    assert fresh.calls == [] and again.stats.hits == 2
    assert words_of(cached) == expected  # from the cache, as the wrapped TTS timed them
    solo = CachedTTS(CountingTTS(aligned=True), live_cache.client(budget=2.0))
    one = await synthesize(solo, "Your call matters to us.")
    assert solo.stats.hits == 1
    assert words_of(one) == [(w, round(s - 0.6, 3), round(e - 0.6, 3)) for w, s, e in expected[6:]]


async def test_cache_error_fails_open_and_is_counted(live_cache: LiveCache) -> None:
    wrapped = CountingTTS()
    service = CachedTTS(wrapped, live_cache.client(key="not-a-key"))
    frames = await synthesize(service, "Hello there.")
    await service.drain()
    assert pcm(frames)[: len(tone("Hello there."))] == tone("Hello there.")
    assert wrapped.calls == ["Hello there."]
    assert service.stats.fail_open == 2 and service.stats.stored == 0  # lookup and store


async def test_stalled_cache_fails_open_within_the_default_budget(stalled_url: str) -> None:
    async with httpx.AsyncClient(base_url=stalled_url) as http:
        cache = AudioCacheClient(http, "bot")  # the default budget: 50 ms
        wrapped = CountingTTS()
        service = CachedTTS(wrapped, cache, max_pending_stores=0)
        started = time.monotonic()
        async with service.stream() as s:
            s.push_text("Thanks for waiting on the line. See you again soon.")
            s.end_input()
            first = await anext(s)
            to_first_audio = time.monotonic() - started
            rest = [event async for event in s]
    assert wrapped.calls == ["Thanks for waiting on the line.", "See you again soon."]
    assert service.stats.fail_open >= 2 and service.stats.hits == 0
    assert len(pcm([first, *rest])) >= len(tone("Thanks for waiting. See you soon."))
    # The stalled lookup was given up after its 50 ms: first audio long before a stalled
    # request would give up on its own.
    assert to_first_audio < 0.5, to_first_audio

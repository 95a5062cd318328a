"""A LiveKit ``tts.TTS`` that puts an audiocache in front of another ``tts.TTS``.

``synthesize()`` takes one text; ``stream()`` takes pushed tokens, splits them into
sentences (LiveKit's own sentence tokenizer, as its ``StreamAdapter`` does) and treats each
sentence as ``synthesize()`` treats its text. Per text: a hit emits the cached PCM; a miss
runs the wrapped TTS's ``synthesize()``, forwards its frames live and stores the audio once
the text completed (an interrupted one is cancelled before the store is reached). Cache
errors and lookups over the budget fail open to the wrapped TTS and are counted; the loop is
``front.CacheFront``'s, shared with the Pipecat plugin.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from livekit.agents import tokenize, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.agents.voice.io import TimedString

from audiocache.integrations.client import AudioCacheClient
from audiocache.integrations.front import DEFAULT_MAX_PENDING_STORES, CacheFront, LiveTake
from audiocache.integrations.stats import CacheStats

__all__ = ["CachedTTS"]


class CachedTTS(tts.TTS[None]):
    def __init__(
        self,
        wrapped: tts.TTS[Any],
        cache: AudioCacheClient,
        *,
        voice: str | None = None,
        language: str | None = None,
        max_pending_stores: int = DEFAULT_MAX_PENDING_STORES,
        sentence_tokenizer: tokenize.SentenceTokenizer | None = None,
    ) -> None:
        """``max_pending_stores`` (default 8) bounds the stores running in the background;
        past it a finished miss is not stored (counted in ``stats.fail_open``)."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=wrapped.sample_rate,
            num_channels=wrapped.num_channels,
        )
        self.wrapped = wrapped
        self.front = CacheFront(cache, max_pending_stores=max_pending_stores)
        self.voice = voice
        self.language = language
        self.sentence_tokenizer = sentence_tokenizer or tokenize.blingfire.SentenceTokenizer(
            retain_format=True
        )

    @property
    def stats(self) -> CacheStats:
        return self.front.stats

    @property
    def model(self) -> str:
        return self.wrapped.model

    @property
    def provider(self) -> str:
        return self.wrapped.provider

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _CachedChunkedStream(tts=self, input_text=text, conn_options=conn_options)

    def stream(
        self, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.SynthesizeStream:
        return _CachedSynthesizeStream(tts=self, conn_options=conn_options)

    async def drain(self) -> None:
        """Wait for the background stores (tests, shutdown)."""
        await self.front.drain()

    async def speak(
        self, text: str, emitter: tts.AudioEmitter, conn_options: APIConnectOptions
    ) -> float:
        """One text into ``emitter`` (already initialized at this TTS's format), from the
        cache or live; returns the seconds of audio pushed."""
        phrase = self.front.phrase(text, self.voice, self.language)
        hit = await self.front.lookup(phrase, self.sample_rate)
        if hit is not None:
            emitter.push(hit.pcm)
            return len(hit.pcm) / (2 * hit.channels * hit.sample_rate)
        take = LiveTake(phrase)
        async with self.wrapped.synthesize(text, conn_options=conn_options) as live:
            async for event in live:
                frame = event.frame
                take.add(frame.data.tobytes(), frame.sample_rate, frame.num_channels)
                emitter.push_frame(frame)
        # Reached only when the text completed: an interruption cancels this task.
        self.front.store(take)
        seconds = sum(len(c) for c in take.chunks) / (2 * take.channels * take.sample_rate or 1)
        return seconds


class _CachedChunkedStream(tts.ChunkedStream):
    _tts: CachedTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        output_emitter.initialize(
            request_id=uuid.uuid4().hex,
            sample_rate=owner.sample_rate,
            num_channels=owner.num_channels,
            mime_type="audio/pcm",
        )
        await owner.speak(self._input_text, output_emitter, self._conn_options)
        output_emitter.flush()


class _CachedSynthesizeStream(tts.SynthesizeStream):
    _tts: CachedTTS

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        output_emitter.initialize(
            request_id=utils.shortuuid(),
            sample_rate=owner.sample_rate,
            num_channels=owner.num_channels,
            mime_type="audio/pcm",
            stream=True,
        )
        output_emitter.start_segment(segment_id=utils.shortuuid())
        sentences = owner.sentence_tokenizer.stream()

        async def forward_input() -> None:
            async for data in self._input_ch:
                if isinstance(data, self._FlushSentinel):
                    sentences.flush()
                else:
                    sentences.push_text(data)
            sentences.end_input()

        async def synthesize() -> None:
            elapsed = 0.0
            async for event in sentences:
                output_emitter.push_timed_transcript(
                    TimedString(text=event.token, start_time=elapsed)
                )
                if not event.token.strip():
                    continue
                self._mark_started()
                elapsed += await owner.speak(event.token, output_emitter, self._conn_options)
                output_emitter.flush()

        tasks = [asyncio.create_task(forward_input()), asyncio.create_task(synthesize())]
        try:
            await asyncio.gather(*tasks)
        finally:
            await sentences.aclose()
            await utils.aio.cancel_and_wait(*tasks)

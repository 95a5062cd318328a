"""A Pipecat TTS service that puts an audiocache in front of any other Pipecat TTS service.

Per sentence (Pipecat's own aggregation hands ``run_tts`` one sentence at a time): a hit
streams the cached audio as ``TTSAudioRawFrame``s; a miss runs the wrapped service, forwards
its frames live, and stores the audio once the utterance completed. An interrupted utterance
is never stored: Pipecat closes the generator, so the code after the loop does not run.
Any cache error, or a lookup slower than its budget (50 ms by default), falls back to the
wrapped service (fail-open) and is counted in ``stats``.

Not done yet (see the report): clause mode, word timestamps pass through untouched (the
wrapped service's frames are forwarded as they are) but a hit has none.
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncGenerator
from typing import Any

from pipecat.frames.frames import Frame, TTSAudioRawFrame
from pipecat.services.tts_service import TTSService

from audiocache.audio.wav import build_wav
from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.stats import CacheStats

__all__ = ["CacheStats", "CachedTTSService"]

CHUNK_SECONDS = 0.02


class CachedTTSService(TTSService):
    def __init__(
        self,
        wrapped: TTSService,
        cache: AudioCacheClient,
        *,
        voice: str | None = None,
        language: str | None = None,
        max_pending_stores: int = 8,
        **kwargs: Any,
    ) -> None:
        """``max_pending_stores`` (default 8) bounds the stores running in the background;
        past it a finished miss is not stored (counted in ``stats.fail_open``)."""
        super().__init__(**kwargs)
        self._max_pending_stores = max_pending_stores
        self._wrapped = wrapped
        self._cache = cache
        self._voice = voice
        self._language = language
        self.stats = CacheStats()
        self._stores: set[asyncio.Task[None]] = set()

    def _phrase(self, text: str) -> Phrase:
        return Phrase(" ".join(text.split()), self._voice, self._language)

    def _rate(self) -> int:
        return self.sample_rate or self._wrapped.sample_rate or 16000

    async def _cached(self, phrase: Phrase) -> bytes | None:
        try:
            return await asyncio.wait_for(
                self._cache.lookup(phrase, output_format=f"wav_{self._rate()}"),
                self._cache.lookup_budget_s,
            )
        except Exception:  # fail-open: any cache trouble means "synthesize live"
            self.stats.fail_open += 1
            return None

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        phrase = self._phrase(text)
        wav = await self._cached(phrase) if phrase.text else None
        if wav is not None:
            self.stats.hits += 1
            with wave.open(io.BytesIO(wav)) as w:
                rate, pcm = w.getframerate(), w.readframes(w.getnframes())
            step = int(rate * CHUNK_SECONDS) * 2
            for start in range(0, len(pcm), step):
                yield TTSAudioRawFrame(pcm[start : start + step], rate, 1, context_id=context_id)
            return
        self.stats.misses += 1
        chunks: list[bytes] = []
        rate = 0
        async for frame in self._wrapped.run_tts(text, context_id):
            if isinstance(frame, TTSAudioRawFrame) and frame.num_channels == 1:
                chunks.append(frame.audio)
                rate = frame.sample_rate
            yield frame
        # Reached only when the utterance completed: an interruption closes the generator.
        if chunks and rate and phrase.text:
            if len(self._stores) >= self._max_pending_stores:
                self.stats.fail_open += 1  # the cache is slow: never queue without bound
                return
            wav = build_wav(b"".join(chunks), sample_rate=rate)
            task = asyncio.create_task(self._store(phrase, wav))
            self._stores.add(task)
            task.add_done_callback(self._stores.discard)

    async def _store(self, phrase: Phrase, wav: bytes) -> None:
        try:
            if (await self._cache.store(phrase, wav)).created:
                self.stats.stored += 1
        except Exception:
            self.stats.fail_open += 1

    async def drain(self) -> None:
        """Wait for the background stores (tests, shutdown)."""
        while self._stores:
            await asyncio.gather(*list(self._stores), return_exceptions=True)

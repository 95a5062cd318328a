"""A LiveKit ``tts.TTS`` that puts an audiocache in front of another ``tts.TTS``.

``synthesize()`` only for now (``stream()`` is not written yet, see the report): a hit emits
the cached PCM; a miss runs the wrapped TTS, forwards its frames live and stores the audio
once the utterance completed (an interrupted one is cancelled before the store is reached).
Cache errors and lookups over the budget fail open to the wrapped TTS and are counted.
"""

from __future__ import annotations

import asyncio
import io
import uuid
import wave
from typing import Any

from livekit.agents import tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions

from audiocache.audio.wav import build_wav
from audiocache.integrations.client import AudioCacheClient, Phrase
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
    ) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=wrapped.sample_rate,
            num_channels=wrapped.num_channels,
        )
        self.wrapped = wrapped
        self.cache = cache
        self.voice = voice
        self.language = language
        self.stats = CacheStats()

    def phrase(self, text: str) -> Phrase:
        return Phrase(" ".join(text.split()), self.voice, self.language)

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        return _CachedStream(tts=self, input_text=text, conn_options=conn_options)


class _CachedStream(tts.ChunkedStream):
    _tts: CachedTTS

    async def _lookup(self, phrase: Phrase) -> bytes | None:
        owner = self._tts
        try:
            return await asyncio.wait_for(
                owner.cache.lookup(phrase, output_format=f"wav_{owner.sample_rate}"),
                owner.cache.lookup_budget_s,
            )
        except Exception:  # fail-open: any cache trouble means "synthesize live"
            owner.stats.fail_open += 1
            return None

    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        owner = self._tts
        phrase = owner.phrase(self._input_text)
        wav = await self._lookup(phrase) if phrase.text else None
        if wav is not None:
            owner.stats.hits += 1
            with wave.open(io.BytesIO(wav)) as w:
                rate, channels = w.getframerate(), w.getnchannels()
                pcm = w.readframes(w.getnframes())
            output_emitter.initialize(
                request_id=uuid.uuid4().hex,
                sample_rate=rate,
                num_channels=channels,
                mime_type="audio/pcm",
            )
            output_emitter.push(pcm)
            output_emitter.flush()
            return
        owner.stats.misses += 1
        chunks: list[bytes] = []
        rate = channels = 0
        wrapped = owner.wrapped.synthesize(self._input_text, conn_options=self._conn_options)
        async with wrapped as live:
            async for event in live:
                frame = event.frame
                if not chunks:
                    rate, channels = frame.sample_rate, frame.num_channels
                    output_emitter.initialize(
                        request_id=event.request_id or uuid.uuid4().hex,
                        sample_rate=rate,
                        num_channels=channels,
                        mime_type="audio/pcm",
                    )
                data = frame.data.tobytes()
                chunks.append(data)
                output_emitter.push(data)
        output_emitter.flush()
        # Reached only when the utterance completed: an interruption cancels this task.
        if chunks and phrase.text:
            audio = build_wav(b"".join(chunks), sample_rate=rate, channels=channels)
            try:
                if (await owner.cache.store(phrase, audio)).created:
                    owner.stats.stored += 1
            except Exception:
                owner.stats.fail_open += 1

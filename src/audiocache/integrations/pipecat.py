"""A Pipecat TTS service that puts an audiocache in front of any other Pipecat TTS service.

Per sentence (Pipecat's own aggregation hands ``run_tts`` one sentence at a time): a hit
streams the cached audio as ``TTSAudioRawFrame``s; a miss runs the wrapped service, forwards
its frames live, and stores the audio once the utterance completed. An interrupted utterance
is never stored: Pipecat closes the generator, so the code after the loop does not run.
Any cache error, or a lookup slower than its budget (50 ms by default), falls back to the
wrapped service (fail-open) and is counted in ``stats``. The loop is ``front.CacheFront``'s,
shared with the LiveKit plugin.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from pipecat.frames.frames import CancelFrame, EndFrame, Frame, StartFrame, TTSAudioRawFrame
from pipecat.processors.frame_processor import FrameProcessorSetup
from pipecat.services.tts_service import TTSService

from audiocache.integrations.client import AudioCacheClient
from audiocache.integrations.front import DEFAULT_MAX_PENDING_STORES, CacheFront, LiveTake
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
        max_pending_stores: int = DEFAULT_MAX_PENDING_STORES,
        **kwargs: Any,
    ) -> None:
        """``max_pending_stores`` (default 8) bounds the stores running in the background;
        past it a finished miss is not stored (counted in ``stats.fail_open``). The wrapper
        opens and closes its audio contexts itself (``push_start_frame``/``push_stop_frames``),
        as the HTTP services do, and runs at the wrapped service's sample rate."""
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs.setdefault("sample_rate", wrapped._init_sample_rate)
        super().__init__(**kwargs)
        self._wrapped = wrapped
        self._front = CacheFront(cache, max_pending_stores=max_pending_stores)
        self._voice = voice
        self._language = language

    @property
    def stats(self) -> CacheStats:
        return self._front.stats

    @property
    def cache(self) -> AudioCacheClient:
        return self._front.cache

    @cache.setter
    def cache(self, client: AudioCacheClient) -> None:
        self._front.cache = client

    # The wrapped service is not in the pipeline: it is set up, started and stopped with us
    # (its sample rate, HTTP sessions and clients come from these).
    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]
        await super().setup(setup)
        await self._wrapped.setup(setup)

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self._wrapped.start(frame)

    async def stop(self, frame: EndFrame) -> None:
        await self._wrapped.stop(frame)
        await super().stop(frame)

    async def cancel(self, frame: CancelFrame) -> None:
        await self._wrapped.cancel(frame)
        await super().cancel(frame)

    async def cleanup(self) -> None:
        await self._wrapped.cleanup()  # type: ignore[no-untyped-call]
        await super().cleanup()  # type: ignore[no-untyped-call]

    def _rate(self) -> int:
        return self.sample_rate or self._wrapped.sample_rate or 16000

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        phrase = self._front.phrase(text, self._voice, self._language)
        hit = await self._front.lookup(phrase, self._rate())
        if hit is not None:
            step = int(hit.sample_rate * CHUNK_SECONDS) * 2 * hit.channels
            for start in range(0, len(hit.pcm), step):
                yield TTSAudioRawFrame(
                    hit.pcm[start : start + step],
                    hit.sample_rate,
                    hit.channels,
                    context_id=context_id,
                )
            return
        take = LiveTake(phrase)
        async for frame in self._wrapped.run_tts(text, context_id):
            if isinstance(frame, TTSAudioRawFrame):
                take.add(frame.audio, frame.sample_rate, frame.num_channels)
            yield frame
        # Reached only when the utterance completed: an interruption closes the generator.
        self._front.store(take)

    async def drain(self) -> None:
        """Wait for the background stores (tests, shutdown)."""
        await self._front.drain()

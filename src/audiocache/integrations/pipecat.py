"""A Pipecat TTS service that puts an audiocache in front of any other Pipecat TTS service.

Per sentence (Pipecat's own aggregation hands ``run_tts`` one sentence at a time): a hit
streams the cached audio as ``TTSAudioRawFrame``s; a miss runs the wrapped service, forwards
its frames live, and stores the audio once the utterance completed. An interrupted utterance
is never stored: Pipecat closes the generator, so the code after the loop does not run.
Any cache error, or a lookup slower than its budget (50 ms by default), falls back to the
wrapped service (fail-open) and is counted in ``stats``. The loop is ``front.CacheFront``'s,
shared with the LiveKit plugin, and so is clause mode (``clauses=True``).

Word timestamps: a wrapped service that times its words calls ``add_word_timestamps`` on
itself; the wrapper takes that call (the wrapped service is in no pipeline), keeps the words
with the take relative to its start, and passes them on at this context's offset. Services
that time every synthesis from zero and those that run one timeline on (ElevenLabs' HTTP
service) are both understood: a first word earlier than the audio already produced means the
former. Hits replay the stored words.

Two kinds of wrapped service. An HTTP one yields its audio from ``run_tts``: the wrapper runs
that generator. A websocket one (``WebsocketTTSService``, ``InterruptibleTTSService``:
ElevenLabs, Cartesia, Deepgram, Rime, …) only sends the text from ``run_tts`` and delivers the
audio from its receive task into an audio context of its own: the wrapper has it speak each
sentence as a context of its own, as its base class would a ``TTSSpeakFrame`` (the context
created, ``run_tts``, then ``on_turn_context_completed``, which flushes or closes it at the
provider), takes what it plays of that context (``pipecat_tap``) and forwards it live; the
context's end (the provider's "done", or the service's silence timeout) ends the take. Its word
times are relative to that context, so to the take. An error it reports during the take spoils
the take (never stored); an interruption reaches it from the wrapper (it cancels the provider
context, or reconnects). Which kind: ``receives_audio``, by default whether the service is a
``WebsocketService``; pass True for one that is not but delivers from a task of its own too
(Nvidia's gRPC service, say).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from typing import Any

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    StartFrame,
    TTSAudioRawFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSContext, TTSService
from pipecat.services.websocket_service import WebsocketService
from pipecat.utils.text.word_timestamp_utils import merge_punct_tokens

from audiocache.audio.joins import DEFAULT_PAUSE_MS
from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.front import (
    DEFAULT_MAX_PENDING_STORES,
    CacheFront,
    LiveTake,
    approximate_words,
    clause_audio,
    clauses_of,
)
from audiocache.integrations.pipecat_tap import AudioContextTap
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
        clauses: bool = False,
        clause_pause_ms: int = DEFAULT_PAUSE_MS,
        receives_audio: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """``max_pending_stores`` (default 8) bounds the stores running in the background;
        past it a finished miss is not stored (counted in ``stats.fail_open``). ``clauses``:
        cache per clause (split at , ; : and dashes) and join them (``front.clause_audio``);
        a sentence with a missing clause then plays once that clause is synthesized. The wrapper
        opens and closes its audio contexts itself (``push_start_frame``/``push_stop_frames``),
        as the HTTP services do, and runs at the wrapped service's sample rate.
        ``receives_audio``: the wrapped service delivers its audio from a task of its own into
        its audio contexts, not from ``run_tts``; None (default): if it is a websocket one."""
        kwargs.setdefault("push_start_frame", True)
        kwargs.setdefault("push_stop_frames", True)
        kwargs.setdefault("sample_rate", wrapped._init_sample_rate)
        # A wrapped service that times words pushes no sentence TTSTextFrames; nor do we.
        kwargs.setdefault("push_text_frames", wrapped._push_text_frames)
        kwargs.setdefault("settings", TTSSettings(model=None, voice=voice, language=language))
        super().__init__(**kwargs)
        self._wrapped = wrapped
        self._timed = not self._push_text_frames
        self._front = CacheFront(cache, max_pending_stores=max_pending_stores, words=self._timed)
        self._voice = voice
        self._language = language
        # Word timestamps the wrapped service reports come to us (it is in no pipeline).
        wrapped.add_word_timestamps = self._wrapped_words  # type: ignore[method-assign]
        self._take: LiveTake | None = None  # the live synthesis running now, if any
        self._take_base = 0.0  # where that take starts on the wrapped service's timeline
        self._wrapped_seconds = 0.0  # audio the wrapped service produced so far
        self._context: tuple[str | None, float] = (None, 0.0)  # our context, seconds in it
        self._clauses = clauses
        self._clause_pause_ms = clause_pause_ms
        self._forward_words = True  # off in clause mode: the joined words go instead
        if receives_audio is None:
            receives_audio = isinstance(wrapped, WebsocketService)
        self._tap = AudioContextTap(wrapped, self._stray_error) if receives_audio else None
        self._own_context: tuple[str, str] | None = None  # the wrapped one's context, ours

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

    def _offset(self, context_id: str) -> float:
        """Seconds of audio already spoken in this context (word times are relative to it)."""
        current, seconds = self._context
        return seconds if current == context_id else 0.0

    def _spoke(self, context_id: str, seconds: float) -> None:
        self._context = (context_id, self._offset(context_id) + seconds)

    async def _wrapped_words(
        self,
        word_times: list[tuple[str, float]],
        context_id: str | None = None,
        includes_inter_frame_spaces: bool | None = None,
        pre_merge_tokens: bool = False,
    ) -> None:
        """The wrapped service's ``add_word_timestamps``: kept with the take, passed on."""
        if pre_merge_tokens:
            word_times = merge_punct_tokens(word_times)
        if self._own_context is not None and context_id == self._own_context[0]:
            context_id = self._own_context[1]
        take, shifted = self._take, []
        for word, timestamp in word_times:
            if take is not None:
                if not take.words and timestamp < self._take_base - 0.05:
                    self._take_base = 0.0  # this service times each synthesis from zero
                take.add_word(word, timestamp - self._take_base)
            start = timestamp - self._take_base
            shifted.append((word, start + (self._offset(context_id) if context_id else 0.0)))
        if self._forward_words:
            await self.add_word_timestamps(shifted, context_id, includes_inter_frame_spaces)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        phrase = self._front.phrase(text, self._voice, self._language)
        if self._clauses and len(clauses := clauses_of(phrase.text)) > 1:
            async for frame in self._run_clauses(clauses, context_id):
                yield frame
            return
        hit = await self._front.lookup(phrase, self._rate())
        if hit is not None:
            if self._timed:
                words = hit.words or approximate_words(phrase.text, hit.seconds)
                offset = self._offset(context_id)
                await self.add_word_timestamps(
                    [(w.text, w.start + offset) for w in words], context_id
                )
            step = int(hit.sample_rate * CHUNK_SECONDS) * 2 * hit.channels
            for start in range(0, len(hit.pcm), step):
                yield TTSAudioRawFrame(
                    hit.pcm[start : start + step],
                    hit.sample_rate,
                    hit.channels,
                    context_id=context_id,
                )
            self._spoke(context_id, hit.seconds)
            return
        take = LiveTake(phrase)
        self._take, self._take_base = take, self._wrapped_seconds
        try:
            async for frame in self._live(text, context_id, take):
                if isinstance(frame, TTSAudioRawFrame):
                    take.add(frame.audio, frame.sample_rate, frame.num_channels)
                yield frame
        finally:
            self._take = None
            self._wrapped_seconds += take.seconds
            self._spoke(context_id, take.seconds)
        # Reached only when the utterance completed: an interruption closes the generator.
        self._front.store(take)

    def _live(
        self, text: str, context_id: str, take: LiveTake
    ) -> AsyncGenerator[Frame | None, None]:
        """The wrapped service's frames for ``text``: its ``run_tts`` (an HTTP service), or what
        it plays of a context of its own (one that receives its audio)."""
        if self._tap is None:
            return self._wrapped.run_tts(text, context_id)
        return self._received(text, context_id, take)

    async def _received(
        self, text: str, context_id: str, take: LiveTake
    ) -> AsyncGenerator[Frame | None, None]:
        assert self._tap is not None
        wrapped = self._wrapped
        # A context of its own per take: the provider ends it, and so the take, and its word
        # times start with it. It is interruptible as our context is.
        own = str(uuid.uuid4())
        ours = self._tts_contexts.get(context_id)
        wrapped._tts_contexts[own] = TTSContext(interruptible=ours.interruptible if ours else True)
        tapped = self._tap.open(own)
        self._own_context, self._take_base = (own, context_id), 0.0
        wrapped._turn_context_id = own
        try:
            await wrapped.on_turn_context_created(own)
            await wrapped._start_audio_context(own)
            await wrapped.tts_process_generator(own, wrapped.run_tts(text, own))
            # As at a turn's end: it flushes (or closes) the context at the provider.
            await wrapped.on_turn_context_completed()  # type: ignore[no-untyped-call]
            self._tap.settle(tapped)
            async for frame in tapped.frames():
                if isinstance(frame, TTSAudioRawFrame):
                    frame = TTSAudioRawFrame(
                        frame.audio, frame.sample_rate, frame.num_channels, context_id=context_id
                    )
                yield frame
        finally:
            self._tap.close(tapped)
            self._own_context = None
            wrapped._tts_contexts.pop(own, None)  # its context has ended or is abandoned
            if wrapped._turn_context_id == own:
                wrapped._turn_context_id = None
        if tapped.failed:
            take.spoil()

    async def _stray_error(self, frame: ErrorFrame) -> None:
        """An error the wrapped service reports outside any take: passed on upstream."""
        await self.push_frame(frame, FrameDirection.UPSTREAM)

    async def _handle_interruption(
        self, frame: InterruptionFrame, direction: FrameDirection
    ) -> None:
        await super()._handle_interruption(frame, direction)
        if self._tap is not None:
            # It is in no pipeline: it hears of the interruption from us, and cancels its
            # provider context (or reconnects) as it would in one.
            await self._wrapped._handle_interruption(frame, direction)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if self._tap is not None and isinstance(
            frame, BotStartedSpeakingFrame | BotStoppedSpeakingFrame
        ):
            # An InterruptibleTTSService reconnects on an interruption only while it speaks.
            await self._wrapped.process_frame(frame, direction)

    async def _run_clauses(
        self, clauses: list[str], context_id: str
    ) -> AsyncGenerator[Frame | None, None]:
        others: list[Frame] = []  # what the wrapped service says besides audio (errors)

        async def live(clause: str, phrase: Phrase) -> LiveTake:
            take = LiveTake(phrase)
            self._take, self._take_base = take, self._wrapped_seconds
            self._forward_words = False
            try:
                async for frame in self._live(clause, context_id, take):
                    if isinstance(frame, TTSAudioRawFrame):
                        take.add(frame.audio, frame.sample_rate, frame.num_channels)
                    elif frame is not None:
                        others.append(frame)
            finally:
                self._take, self._forward_words = None, True
                self._wrapped_seconds += take.seconds
            return take

        rate = self._rate()
        phrases = [self._front.phrase(c, self._voice, self._language) for c in clauses]
        pcm, words = await clause_audio(
            self._front, clauses, phrases, rate, live, pause_ms=self._clause_pause_ms
        )
        for frame in others:
            yield frame
        seconds = len(pcm) / (2 * rate)
        if self._timed:
            timed = words or approximate_words(" ".join(clauses), seconds)
            offset = self._offset(context_id)
            await self.add_word_timestamps([(w.text, w.start + offset) for w in timed], context_id)
        step = int(rate * CHUNK_SECONDS) * 2
        for start in range(0, len(pcm), step):
            yield TTSAudioRawFrame(pcm[start : start + step], rate, 1, context_id=context_id)
        self._spoke(context_id, seconds)

    async def drain(self) -> None:
        """Wait for the background stores (tests, shutdown)."""
        await self._front.drain()

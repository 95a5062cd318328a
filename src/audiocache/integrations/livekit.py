"""A LiveKit ``tts.TTS`` that puts an audiocache in front of another ``tts.TTS``.

``synthesize()`` takes one text; ``stream()`` takes pushed tokens, splits them into
sentences (LiveKit's own sentence tokenizer, as its ``StreamAdapter`` does) and treats each
sentence as ``synthesize()`` treats its text. Per text: a hit emits the cached PCM; a miss
runs the wrapped TTS's ``synthesize()``, forwards its frames live and stores the audio once
the text completed (an interrupted one is cancelled before the store is reached). Cache
errors and lookups over the budget fail open to the wrapped TTS and are counted; the loop is
``front.CacheFront``'s, shared with the Pipecat plugin, and so is clause mode.

Word timestamps: the ``TimedString``s of an ``aligned_transcript`` TTS are forwarded, stored
with the take and replayed on hits, each sentence's at its offset in the stream; a sentence
without them is one timed string at its start (as LiveKit's ``StreamAdapter`` marks them).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from livekit.agents import tokenize, tts, utils
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    USERDATA_TIMED_TRANSCRIPT,
    APIConnectOptions,
)
from livekit.agents.voice.io import TimedString

from audiocache.audio.joins import DEFAULT_PAUSE_MS
from audiocache.integrations.client import AudioCacheClient, Phrase, Word
from audiocache.integrations.front import (
    DEFAULT_MAX_PENDING_STORES,
    CacheFront,
    LiveTake,
    clause_audio,
    clauses_of,
)
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
        clauses: bool = False,
        clause_pause_ms: int = DEFAULT_PAUSE_MS,
    ) -> None:
        """``max_pending_stores`` (default 8) bounds the stores running in the background;
        past it a finished miss is not stored (counted in ``stats.fail_open``). ``clauses``:
        cache per clause (split at , ; : and dashes) and join them (``front.clause_audio``);
        a text with a missing clause then plays once that clause is synthesized (mono)."""
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=True, aligned_transcript=True),
            sample_rate=wrapped.sample_rate,
            num_channels=wrapped.num_channels,
        )
        self.wrapped = wrapped
        self.front = CacheFront(
            cache,
            max_pending_stores=max_pending_stores,
            words=wrapped.capabilities.aligned_transcript,
        )
        self.voice = voice
        self.language = language
        self.clauses = clauses
        self.clause_pause_ms = clause_pause_ms
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
        self,
        text: str,
        emitter: tts.AudioEmitter,
        conn_options: APIConnectOptions,
        *,
        offset: float = 0.0,
        mark_sentence: bool = False,
    ) -> float:
        """One text into ``emitter`` (already initialized at this TTS's format), from the
        cache or live; returns the seconds of audio pushed. Word timestamps (``TimedString``)
        go along, ``offset`` seconds later: a hit's stored ones, a miss's from the wrapped
        TTS; with ``mark_sentence``, a text without them is marked as one timed string."""
        phrase = self.front.phrase(text, self.voice, self.language)
        if self.clauses and self.num_channels == 1 and len(clauses := clauses_of(text)) > 1:
            return await self._speak_clauses(
                text, clauses, emitter, conn_options, offset, mark_sentence
            )
        hit = await self.front.lookup(phrase, self.sample_rate)
        if hit is not None:
            if hit.words:
                emitter.push_timed_transcript([_timed(w, offset) for w in hit.words])
            elif mark_sentence:
                emitter.push_timed_transcript(TimedString(text=text, start_time=offset))
            emitter.push(hit.pcm)
            return hit.seconds
        if mark_sentence and not self.wrapped.capabilities.aligned_transcript:
            emitter.push_timed_transcript(TimedString(text=text, start_time=offset))
        take = await self._live(text, phrase, conn_options, emitter, offset)
        # Reached only when the text completed: an interruption cancels this task.
        self.front.store(take)
        return take.seconds

    async def _live(
        self,
        text: str,
        phrase: Phrase,
        conn_options: APIConnectOptions,
        emitter: tts.AudioEmitter | None,
        offset: float = 0.0,
    ) -> LiveTake:
        """The wrapped TTS's synthesis of ``text``, forwarded to ``emitter`` if given."""
        take = LiveTake(phrase)
        async with self.wrapped.synthesize(text, conn_options=conn_options) as live:
            async for event in live:
                frame = event.frame
                for word in frame.userdata.get(USERDATA_TIMED_TRANSCRIPT, ()):
                    if utils.is_given(word.start_time):
                        end = word.end_time if utils.is_given(word.end_time) else None
                        take.add_word(str(word), word.start_time, end)
                        if emitter is not None:
                            emitter.push_timed_transcript(_timed(take.words[-1], offset))
                data = frame.data.tobytes()
                if event.is_final and frame.duration <= 0.01 and not any(data):
                    continue  # the end-of-segment marker of the wrapped TTS's emitter
                take.add(data, frame.sample_rate, frame.num_channels)
                if emitter is not None:
                    emitter.push_frame(frame)
        return take

    async def _speak_clauses(
        self,
        text: str,
        clauses: list[str],
        emitter: tts.AudioEmitter,
        conn_options: APIConnectOptions,
        offset: float,
        mark_sentence: bool,
    ) -> float:
        async def live(clause: str, phrase: Phrase) -> LiveTake:
            return await self._live(clause, phrase, conn_options, None)

        phrases = [self.front.phrase(c, self.voice, self.language) for c in clauses]
        pcm, words = await clause_audio(
            self.front, clauses, phrases, self.sample_rate, live, pause_ms=self.clause_pause_ms
        )
        if words:
            emitter.push_timed_transcript([_timed(w, offset) for w in words])
        elif mark_sentence:
            emitter.push_timed_transcript(TimedString(text=text, start_time=offset))
        emitter.push(pcm)
        return len(pcm) / (2 * self.sample_rate)


def _timed(word: Word, offset: float) -> TimedString:
    end = NOT_GIVEN if word.end is None else word.end + offset
    return TimedString(text=word.text, start_time=word.start + offset, end_time=end)


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
                if not (text := event.token.strip()):
                    continue
                self._mark_started()
                elapsed += await owner.speak(
                    text,
                    output_emitter,
                    self._conn_options,
                    offset=elapsed,
                    mark_sentence=True,
                )
                output_emitter.flush()

        tasks = [asyncio.create_task(forward_input()), asyncio.create_task(synthesize())]
        try:
            await asyncio.gather(*tasks)
        finally:
            await sentences.aclose()
            await utils.aio.cancel_and_wait(*tasks)

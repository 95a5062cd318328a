"""The lookup / fail-open / store loop both plugins share (no framework imports), and their
clause mode (``clause_audio``).

A plugin asks ``CacheFront.lookup`` first: a hit comes back as decoded PCM; a miss, a cache
error or a lookup slower than the client's budget comes back as None (the latter two counted
in ``stats.fail_open``), and the plugin synthesizes live. The live audio goes into a
``LiveTake``; only when the utterance completed does the plugin call ``CacheFront.store``,
which stores in the background, bounded by ``max_pending_stores``: past it a finished miss is
served, not stored, and counted (a slow cache never queues audio without bound).
"""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from audiocache.audio.joins import DEFAULT_PAUSE_MS, join_clauses, split_clauses
from audiocache.audio.wav import build_wav
from audiocache.integrations.client import AudioCacheClient, CachedTake, Phrase, Word
from audiocache.integrations.stats import CacheStats

__all__ = [
    "DEFAULT_MAX_PENDING_STORES",
    "CacheFront",
    "CachedAudio",
    "LiveTake",
    "approximate_words",
    "clause_audio",
    "clauses_of",
]

DEFAULT_MAX_PENDING_STORES = 8


@dataclass(frozen=True)
class CachedAudio:
    """A hit: interleaved int16 PCM, and the take's word timestamps (if it has any)."""

    pcm: bytes
    sample_rate: int
    channels: int = 1
    words: tuple[Word, ...] = ()

    @classmethod
    def of_take(cls, take: CachedTake) -> CachedAudio:
        with wave.open(io.BytesIO(take.wav)) as w:
            pcm, rate, channels = w.readframes(w.getnframes()), w.getframerate(), w.getnchannels()
        return cls(pcm, rate, channels, take.words)

    @property
    def seconds(self) -> float:
        return len(self.pcm) / (2 * self.channels * self.sample_rate)


@dataclass
class LiveTake:
    """The audio of a live synthesis, collected while it is forwarded."""

    phrase: Phrase
    chunks: list[bytes] = field(default_factory=list)
    sample_rate: int = 0
    channels: int = 1
    words: list[Word] = field(default_factory=list)
    spoiled: bool = False  # the engine reported an error during it: never stored

    def add(self, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
        if not self.chunks:
            self.sample_rate, self.channels = sample_rate, channels
        elif (sample_rate, channels) != (self.sample_rate, self.channels):
            return  # a format change mid-utterance: not one take, never stored (see complete)
        self.chunks.append(pcm)

    @property
    def seconds(self) -> float:
        frame = 2 * self.channels * self.sample_rate
        return sum(len(c) for c in self.chunks) / frame if frame else 0.0

    @property
    def complete(self) -> bool:
        return bool(self.chunks and self.sample_rate and self.phrase.text and not self.spoiled)

    def spoil(self) -> None:
        self.spoiled = True

    def add_word(self, text: str, start: float, end: float | None = None) -> None:
        """A word the engine timed (seconds from the take's start); one out of order or
        negative is left out, so the words the cache keeps are always in time order."""
        last = self.words[-1].start if self.words else 0.0
        if text.strip() and start >= last and (end is None or end >= start):
            self.words.append(Word(text, start, end))

    def wav(self) -> bytes:
        return build_wav(
            b"".join(self.chunks), sample_rate=self.sample_rate, channels=self.channels
        )


def approximate_words(text: str, seconds: float) -> tuple[Word, ...]:
    """Words spread over ``seconds`` by their length: for a hit whose take has no timings,
    spoken by a plugin whose framework expects them (captions, interruption bookkeeping)."""
    words = text.split()
    total = sum(len(w) + 1 for w in words)
    timed, at = [], 0
    for word in words:
        timed.append(Word(word, seconds * at / total))
        at += len(word) + 1
    return tuple(timed)


class CacheFront:
    """One cache client, its counters and its background stores."""

    def __init__(
        self,
        cache: AudioCacheClient,
        *,
        max_pending_stores: int = DEFAULT_MAX_PENDING_STORES,
        words: bool = False,
    ) -> None:
        """``words``: ask lookups for the take's word timestamps too."""
        self.cache = cache
        self.words = words
        self.max_pending_stores = max_pending_stores
        self.stats = CacheStats()
        self._stores: set[asyncio.Task[None]] = set()

    @staticmethod
    def phrase(text: str, voice: str | None, language: str | None) -> Phrase:
        return Phrase(" ".join(text.split()), voice, language)

    async def lookup(self, phrase: Phrase, sample_rate: int) -> CachedAudio | None:
        """The cached audio at ``sample_rate``, or None: synthesize live (and count why)."""
        take = None
        if phrase.text:
            try:
                take = await asyncio.wait_for(
                    self.cache.lookup_take(
                        phrase, output_format=f"wav_{sample_rate}", words=self.words
                    ),
                    self.cache.lookup_budget_s,
                )
            except Exception:  # fail-open: any cache trouble means "synthesize live"
                self.stats.fail_open += 1
        if take is None:
            self.stats.misses += 1
            return None
        try:
            audio = CachedAudio.of_take(take)
        except (wave.Error, EOFError):  # not a WAV we can play: live instead
            self.stats.fail_open += 1
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return audio

    def store(self, take: LiveTake) -> None:
        """Store a completed take in the background (call only once it completed)."""
        if not take.complete:
            return
        if len(self._stores) >= self.max_pending_stores:
            self.stats.fail_open += 1  # the cache is slow: never queue without bound
            return
        task = asyncio.create_task(self._store(take.phrase, take.wav(), tuple(take.words)))
        self._stores.add(task)
        task.add_done_callback(self._stores.discard)

    async def _store(self, phrase: Phrase, wav: bytes, words: tuple[Word, ...]) -> None:
        try:
            if (await self.cache.store(phrase, wav, words)).created:
                self.stats.stored += 1
        except Exception:
            self.stats.fail_open += 1

    @property
    def pending_stores(self) -> int:
        return len(self._stores)

    async def drain(self) -> None:
        """Wait for the background stores (tests, shutdown)."""
        while self._stores:
            await asyncio.gather(*list(self._stores), return_exceptions=True)


LiveSynthesis = Callable[[str, Phrase], Awaitable[LiveTake]]


async def clause_audio(
    front: CacheFront,
    clauses: list[str],
    phrases: list[Phrase],
    sample_rate: int,
    live: LiveSynthesis,
    *,
    pause_ms: int = DEFAULT_PAUSE_MS,
) -> tuple[bytes, list[Word]]:
    """Clause mode: every clause looked up (at once, each within the budget), the missing
    ones synthesized by ``live`` one after another and stored on their own, then all joined
    by ``audio.joins.join_clauses`` (levels matched, edges faded, a fixed pause between), so
    cached and live clauses play without clicks or jumps. Mono int16 PCM and the words,
    shifted to where their clause starts in the joined audio."""
    hits = await asyncio.gather(*(front.lookup(p, sample_rate) for p in phrases))
    parts: list[tuple[npt.NDArray[np.int16], tuple[Word, ...]]] = []
    for clause, phrase, hit in zip(clauses, phrases, hits, strict=True):
        if hit is not None:
            parts.append((np.frombuffer(hit.pcm, dtype="<i2"), hit.words))
            continue
        take = await live(clause, phrase)
        front.store(take)  # the clause as the engine spoke it; the gain is the join's
        parts.append((np.frombuffer(b"".join(take.chunks), dtype="<i2"), tuple(take.words)))
    joined = join_clauses([pcm for pcm, _w in parts], sample_rate, pause_ms=pause_ms)
    words: list[Word] = []
    at = 0
    pause = sample_rate * pause_ms // 1000
    for pcm, timed in parts:
        offset = at / sample_rate
        words.extend(
            Word(w.text, w.start + offset, None if w.end is None else w.end + offset) for w in timed
        )
        at += len(pcm) + pause
    return joined.astype("<i2").tobytes(), words


def clauses_of(text: str) -> list[str]:
    """The clauses clause mode speaks ``text`` in (``audio.joins.split_clauses``)."""
    return split_clauses(text) or [text]

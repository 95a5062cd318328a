"""The lookup / fail-open / store loop both plugins share (no framework imports).

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
from dataclasses import dataclass, field

from audiocache.audio.wav import build_wav
from audiocache.integrations.client import AudioCacheClient, Phrase
from audiocache.integrations.stats import CacheStats

__all__ = ["DEFAULT_MAX_PENDING_STORES", "CacheFront", "CachedAudio", "LiveTake"]

DEFAULT_MAX_PENDING_STORES = 8


@dataclass(frozen=True)
class CachedAudio:
    """A hit: interleaved int16 PCM."""

    pcm: bytes
    sample_rate: int
    channels: int = 1

    @classmethod
    def of_wav(cls, wav: bytes) -> CachedAudio:
        with wave.open(io.BytesIO(wav)) as w:
            return cls(w.readframes(w.getnframes()), w.getframerate(), w.getnchannels())


@dataclass
class LiveTake:
    """The audio of a live synthesis, collected while it is forwarded."""

    phrase: Phrase
    chunks: list[bytes] = field(default_factory=list)
    sample_rate: int = 0
    channels: int = 1

    def add(self, pcm: bytes, sample_rate: int, channels: int = 1) -> None:
        if not self.chunks:
            self.sample_rate, self.channels = sample_rate, channels
        elif (sample_rate, channels) != (self.sample_rate, self.channels):
            return  # a format change mid-utterance: not one take, never stored (see complete)
        self.chunks.append(pcm)

    @property
    def complete(self) -> bool:
        return bool(self.chunks and self.sample_rate and self.phrase.text)

    def wav(self) -> bytes:
        return build_wav(
            b"".join(self.chunks), sample_rate=self.sample_rate, channels=self.channels
        )


class CacheFront:
    """One cache client, its counters and its background stores."""

    def __init__(
        self, cache: AudioCacheClient, *, max_pending_stores: int = DEFAULT_MAX_PENDING_STORES
    ) -> None:
        self.cache = cache
        self.max_pending_stores = max_pending_stores
        self.stats = CacheStats()
        self._stores: set[asyncio.Task[None]] = set()

    @staticmethod
    def phrase(text: str, voice: str | None, language: str | None) -> Phrase:
        return Phrase(" ".join(text.split()), voice, language)

    async def lookup(self, phrase: Phrase, sample_rate: int) -> CachedAudio | None:
        """The cached audio at ``sample_rate``, or None: synthesize live (and count why)."""
        wav = None
        if phrase.text:
            try:
                wav = await asyncio.wait_for(
                    self.cache.lookup(phrase, output_format=f"wav_{sample_rate}"),
                    self.cache.lookup_budget_s,
                )
            except Exception:  # fail-open: any cache trouble means "synthesize live"
                self.stats.fail_open += 1
        if wav is None:
            self.stats.misses += 1
            return None
        try:
            audio = CachedAudio.of_wav(wav)
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
        task = asyncio.create_task(self._store(take.phrase, take.wav()))
        self._stores.add(task)
        task.add_done_callback(self._stores.discard)

    async def _store(self, phrase: Phrase, wav: bytes) -> None:
        try:
            if (await self.cache.store(phrase, wav)).created:
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

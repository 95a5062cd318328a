"""Word timestamps a runtime's engine gave for a take: validated on store, replayed on lookup.

On the wire (the store route's ``settings.words``) a word is ``{"text", "start", "end"?}`` in
seconds from the start of the take; the lookup answers them in one header, compact and ASCII
(``[["Hello",0.0,0.32],…]``, ``end`` null when not given), so a hit needs no second request.
At most ``max_words`` per take (a setting) and 8 KiB encoded: the header stays readable.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from audiocache.errors import InvalidSettings
from audiocache.storage.word_timings_repo import WordTimingRepository

__all__ = [
    "MAX_WORD_CHARS",
    "WordTiming",
    "WordTimings",
    "decode",
    "encode",
    "validate_words",
]

MAX_WORD_CHARS = 100
# The header that carries them back must fit what HTTP clients read (h11: 16 KiB a head).
MAX_ENCODED_BYTES = 8192
# Engines round their alignment; a word may end a little after the audio does.
_END_SLACK_S = 0.5


@dataclass(frozen=True)
class WordTiming:
    text: str
    start: float
    end: float | None = None


def validate_words(raw: Sequence[Any], duration: float, max_words: int) -> list[WordTiming]:
    """The words of a take of ``duration`` seconds; InvalidSettings names the first fault."""
    if len(raw) > max_words:
        raise InvalidSettings(f"settings.words has {len(raw)} words; at most {max_words}")
    words: list[WordTiming] = []
    previous = 0.0
    for index, item in enumerate(raw):
        where = f"settings.words[{index}]"
        if not isinstance(item, dict) or set(item) - {"text", "start", "end"}:
            raise InvalidSettings(f"{where} must be an object {{text, start, end?}}")
        text = item.get("text")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_WORD_CHARS:
            raise InvalidSettings(f"{where}.text must be 1..{MAX_WORD_CHARS} characters")
        start = _seconds(item.get("start"))
        if start is None or not previous <= start <= duration + _END_SLACK_S:
            raise InvalidSettings(
                f"{where}.start must be seconds within the audio ({duration:.2f} s), "
                "not before the previous word's"
            )
        end = _seconds(item.get("end"))
        if item.get("end") is not None and (
            end is None or not start <= end <= duration + _END_SLACK_S
        ):
            raise InvalidSettings(f"{where}.end must be seconds from start to the audio's end")
        words.append(WordTiming(text, start, end))
        previous = start
    if len(encode(words)) > MAX_ENCODED_BYTES:
        raise InvalidSettings(
            f"settings.words take over {MAX_ENCODED_BYTES} bytes as the lookup's header; "
            "store fewer or shorter words"
        )
    return words


def _seconds(value: object) -> float | None:
    """``value`` as seconds, or None unless it is a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def encode(words: Sequence[WordTiming]) -> str:
    """Compact, ASCII-only JSON (a header value)."""
    rows = [[w.text, round(w.start, 3), None if w.end is None else round(w.end, 3)] for w in words]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=True)


def decode(text: str) -> list[WordTiming]:
    return [
        WordTiming(str(t), float(s), None if e is None else float(e))
        for t, s, e in json.loads(text)
    ]


class WordTimings:
    """The timings of takes: validated against their audio, kept by blob, read back."""

    def __init__(self, repo: WordTimingRepository, max_words: int) -> None:
        self.repo = repo
        self.max_words = max_words

    def validate(self, raw: Sequence[Any], duration: float) -> list[WordTiming]:
        return validate_words(raw, duration, self.max_words)

    async def keep(self, blob_sha256: str, cache_key: str, words: Sequence[WordTiming]) -> None:
        if words:
            await self.repo.put(blob_sha256, cache_key, encode(words))

    async def header(self, blob_sha256: str, cache_key: str) -> str | None:
        """The lookup's ``X-Audio-Word-Timestamps`` value, or None: no timings kept."""
        return await self.repo.get(blob_sha256, cache_key)

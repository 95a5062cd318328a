"""Long text cut into pieces a neural engine can take one at a time.

A neural engine's working memory grows with the length of what it is given in one go
(Piper: one inference per sentence, ~1 MB per character of a sentence). Text is cut into
pieces of at most ``limit`` characters, each cut at the best point the window offers: a
sentence end, else a clause mark (``, ; :`` or a dash), else whitespace, else a hard cut.
The same text and limit always give the same pieces, so the audio stays deterministic.
"""

from __future__ import annotations

import re

# Where a cut may fall, best first; a match's end is where the next piece starts.
_CLOSERS = "\"')\\]\u00bb\u201d\u2019"  # quotes and brackets that may follow a sentence end
_DASHES = "\u2013\u2014"  # en and em dash
_CUTS = (
    # . ! ? … then a space; CJK full stops and marks need none
    re.compile(f"[.!?\u2026]+[{_CLOSERS}]*\\s+|[\u3002\uff01\uff1f]+[{_CLOSERS}]*"),
    # , ; : (also full-width) then a space, a spaced hyphen or dash, or any dash
    re.compile(f"[,;:\uff0c\uff1b\uff1a]\\s+|\\s+[-{_DASHES}]+\\s+|[{_DASHES}]"),
    re.compile(r"\s+"),
)


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of ``text`` of at most ``limit`` characters, stripped, none empty; joined
    with single spaces they give back ``text`` up to whitespace."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        end, start = _best_cut(rest, limit)
        pieces.append(rest[:end].rstrip())
        rest = rest[start:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _best_cut(text: str, limit: int) -> tuple[int, int]:
    """(end of the first piece, start of the rest) for ``text``, which is longer than
    ``limit`` and has no leading whitespace."""
    window = text[: limit + 1]  # a mark may end right at the limit, its space just past it
    for pattern in _CUTS:
        best: tuple[int, int] | None = None
        for match in pattern.finditer(window):
            end = match.start() + len(match.group().rstrip())  # the mark stays with its piece
            if 0 < end <= limit:
                best = (end, match.end())
        if best is not None:
            return best
    return limit, limit

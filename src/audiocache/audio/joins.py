"""Split text into clauses and join clause audio without clicks or loudness jumps.

The Pipecat and LiveKit wrappers may cache per clause: one clause comes from the cache, the
next from the live engine, often recorded on another day with another level. Played back to
back such pieces click (a waveform cut mid-swing) and jump in loudness. ``join_clauses``
therefore (1) brings every clause to the median RMS level of the utterance, so any two
clauses end up within the ±3 dB the brief allows (exactly equal, unless the gain limit hits),
(2) fades each clause in and out over a few milliseconds, so every join starts and ends at
zero amplitude, and (3) inserts a fixed pause, so the rhythm does not depend on which pieces
were cached. Pure numpy; no I/O.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_FADE_MS",
    "DEFAULT_PAUSE_MS",
    "MAX_GAIN_DB",
    "join_clauses",
    "level_db",
    "split_clauses",
    "split_sentences",
]

Int16Array = npt.NDArray[np.int16]

DEFAULT_PAUSE_MS = 120
DEFAULT_FADE_MS = 5
# A near-silent clause (a breath, a cut) must not be boosted into noise: gain is limited.
MAX_GAIN_DB = 12.0
# Below this level a clause is treated as silence: it is neither measured nor amplified.
SILENCE_DB = -60.0

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Clause breaks: after , ; : or around a dash (en/em dash, or a hyphen between spaces).
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s*[\u2013\u2014]\s*|\s+-\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` (split after . ! ? followed by space), stripped, none empty."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part.strip()]


def split_clauses(text: str) -> list[str]:
    """Clauses of ``text``: each sentence further split at , ; : and dashes."""
    clauses: list[str] = []
    for sentence in split_sentences(text):
        clauses.extend(part.strip() for part in _CLAUSE_BREAK.split(sentence) if part.strip())
    return clauses


def level_db(samples: Int16Array) -> float:
    """RMS level in dBFS (full scale = 32768); ``-inf`` for an empty or all-zero clause."""
    if samples.size == 0:
        return float("-inf")
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    if rms == 0.0:
        return float("-inf")
    return 20.0 * float(np.log10(rms / 32768.0))


def _fade(samples: npt.NDArray[np.float64], fade: int) -> npt.NDArray[np.float64]:
    # A clause shorter than two fades is faded over half its length each side.
    n = min(fade, samples.size // 2)
    if n == 0:
        return samples
    ramp = np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float64)
    out = samples.copy()
    out[:n] *= ramp
    out[-n:] *= ramp[::-1]
    return out


def join_clauses(
    clauses: list[Int16Array],
    sample_rate: int,
    *,
    pause_ms: int = DEFAULT_PAUSE_MS,
    fade_ms: int = DEFAULT_FADE_MS,
) -> Int16Array:
    """One mono int16 signal: clauses gain-matched, faded at the edges, a pause between."""
    if sample_rate <= 0:
        raise ValueError("sample_rate must be positive")
    if pause_ms < 0 or fade_ms < 0:
        raise ValueError("pause_ms and fade_ms must not be negative")
    levels = [level_db(clause) for clause in clauses]
    audible = [level for level in levels if level > SILENCE_DB]
    target = float(np.median(audible)) if audible else 0.0
    fade = sample_rate * fade_ms // 1000
    pause = np.zeros(sample_rate * pause_ms // 1000, dtype=np.float64)
    pieces: list[npt.NDArray[np.float64]] = []
    for clause, level in zip(clauses, levels, strict=True):
        gain_db = 0.0
        if level > SILENCE_DB:
            gain_db = float(np.clip(target - level, -MAX_GAIN_DB, MAX_GAIN_DB))
        scaled = clause.astype(np.float64) * 10.0 ** (gain_db / 20.0)
        if pieces:
            pieces.append(pause)
        pieces.append(_fade(scaled, fade))
    if not pieces:
        return np.zeros(0, dtype=np.int16)
    joined = np.concatenate(pieces)
    # Rounded and clipped, never wrapped: a boosted peak saturates instead of flipping sign.
    return np.clip(np.rint(joined), -32768, 32767).astype(np.int16)

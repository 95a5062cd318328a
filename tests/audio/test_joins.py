"""Tests for audiocache.audio.joins: clause splitting and click-free, level-matched joins."""

from __future__ import annotations

import numpy as np
import pytest

from audiocache.audio.joins import (
    MAX_GAIN_DB,
    join_clauses,
    level_db,
    split_clauses,
    split_sentences,
)

RATE = 16000


def tone(seconds: float, amplitude: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    # Starts at a crest (cos), the worst case for a click at a hard cut.
    return np.rint(amplitude * 32767 * np.cos(2 * np.pi * freq * t)).astype(np.int16)


def test_split_sentences_and_clauses() -> None:
    text = "Hello there, caller. Your balance is low; top up now: today — or tomorrow - ok?  Bye!"
    assert split_sentences(text) == [
        "Hello there, caller.",
        "Your balance is low; top up now: today — or tomorrow - ok?",
        "Bye!",
    ]
    assert split_clauses(text) == [
        "Hello there,",
        "caller.",
        "Your balance is low;",
        "top up now:",
        "today",
        "or tomorrow",
        "ok?",
        "Bye!",
    ]


def test_split_keeps_hyphenated_words_and_numbers() -> None:
    clauses = split_clauses("A well-known fact: 3,000 people.")
    assert clauses == ["A well-known fact:", "3,000 people."]


def test_loud_and_quiet_clauses_end_within_3_db() -> None:
    loud, quiet = tone(0.5, 0.8), tone(0.5, 0.05)  # about 24 dB apart
    assert level_db(loud) - level_db(quiet) > 20
    out = join_clauses([loud, quiet], RATE, pause_ms=100, fade_ms=5)
    first = out[: loud.size]
    second = out[loud.size + RATE // 10 :]
    assert second.size == quiet.size
    assert abs(level_db(first) - level_db(second)) <= 3.0


def test_pause_is_fixed_and_silent() -> None:
    a, b = tone(0.2, 0.3), tone(0.3, 0.3)
    out = join_clauses([a, b], RATE, pause_ms=120, fade_ms=5)
    pause = RATE * 120 // 1000
    assert out.size == a.size + pause + b.size
    assert not out[a.size : a.size + pause].any()


def test_joins_start_and_end_near_zero_no_click() -> None:
    a, b = tone(0.2, 0.9), tone(0.2, 0.9)
    out = join_clauses([a, b], RATE, pause_ms=50, fade_ms=5).astype(np.int32)
    # Without fades the first sample would be a crest (≈ 29 490); faded it is 0.
    assert out[0] == 0
    assert abs(out[a.size - 1]) < 0.9 * 32767 * 0.02
    # The largest sample-to-sample step near each join stays far below a hard cut's.
    edge = RATE * 10 // 1000
    steps = np.abs(np.diff(out[a.size - edge : a.size + RATE // 20 + edge]))
    assert steps.max() < 0.9 * 32767 * 0.2


def test_without_fades_the_join_clicks() -> None:
    # Control for the test above: the same join with fade_ms=0 does jump.
    a = tone(0.2, 0.9)
    out = join_clauses([a, a], RATE, pause_ms=50, fade_ms=0).astype(np.int32)
    assert abs(out[0]) > 0.8 * 32767


def test_silence_is_not_boosted_and_gain_is_limited() -> None:
    silence = np.zeros(RATE // 10, dtype=np.int16)
    whisper = tone(0.2, 0.005)  # about -49 dBFS: audible, far below the median
    loud = tone(0.2, 0.9)
    out = join_clauses([loud, silence, whisper], RATE, pause_ms=0, fade_ms=0)
    assert not out[loud.size : loud.size + silence.size].any()
    boosted = out[loud.size + silence.size :]
    gain = level_db(boosted) - level_db(whisper)
    assert gain == pytest.approx(MAX_GAIN_DB, abs=0.1)


def test_boost_clips_never_wraps() -> None:
    peaky = np.array([0, 32767, -32768, 0] * 100 + [0] * 4000, dtype=np.int16)
    loud = tone(0.5, 0.99)
    out = join_clauses([peaky, loud, loud], RATE, pause_ms=0, fade_ms=0)
    assert out.dtype == np.int16
    assert out[1] > 0 and out[2] < 0


def test_empty_and_bad_arguments() -> None:
    assert join_clauses([], RATE).size == 0
    with pytest.raises(ValueError):
        join_clauses([tone(0.1, 0.5)], 0)
    with pytest.raises(ValueError):
        join_clauses([tone(0.1, 0.5)], RATE, pause_ms=-1)

"""Cutting long text into pieces for a neural engine: bounded, at sensible points, lossless."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiocache.tts.pieces import split_text


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_text_within_the_limit_is_one_piece() -> None:
    assert split_text("  Hello there. How are you?  ", 100) == ["Hello there. How are you?"]
    assert split_text("", 10) == [] and split_text("   ", 10) == []


def test_sentence_ends_come_first() -> None:
    text = "Thanks for calling, we are glad. Your call matters, please hold! Bye?"
    assert split_text(text, 40) == [
        "Thanks for calling, we are glad.",
        "Your call matters, please hold! Bye?",
    ]


def test_then_clause_marks_and_dashes() -> None:
    text = "one two three, four five six; seven eight — nine ten: eleven"
    assert split_text(text, 20) == [
        "one two three,",
        "four five six;",
        "seven eight —",
        "nine ten: eleven",
    ]


def test_then_whitespace_then_a_hard_cut() -> None:
    assert split_text("alpha beta gamma delta epsilon", 12) == [
        "alpha beta",
        "gamma delta",
        "epsilon",
    ]
    assert split_text("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_mark_right_at_the_limit_is_used() -> None:
    assert split_text("abcd. efgh ijkl", 5) == ["abcd.", "efgh", "ijkl"]


def test_five_thousand_characters_without_punctuation() -> None:
    words = [f"word{n % 97}" for n in range(900)]
    text = " ".join(words)[:5000]
    pieces = split_text(text, 300)
    assert len(pieces) >= 17
    assert all(0 < len(p) <= 300 for p in pieces)
    assert " ".join(pieces) == text  # cut only at spaces: nothing lost, no word split
    assert all(len(p) > 250 for p in pieces[:-1])  # and the pieces are not needlessly short


def test_deterministic() -> None:
    text = "Some text, with marks; and more. " * 40
    assert split_text(text, 123) == split_text(text, 123)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        split_text("text", 0)


@given(st.text(st.characters(codec="utf-8"), max_size=400), st.integers(1, 60))
def test_any_text_every_piece_within_the_limit_and_nothing_lost(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < len(p) <= limit and p == p.strip() for p in pieces)
    assert squash("".join(pieces)) == squash(text)

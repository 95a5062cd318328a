"""The cache key: canonical, versioned, sensitive to sound and blind to noise."""

from __future__ import annotations

import json
import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st

from audiocache.cache.keys import KEY_VERSION, SOUND_FIELDS, KeyParts, cache_key, normalise_text

BASE = {
    "agent_id": "bot",
    "provider": "espeak",
    "voice": "en-us",
    "model": "espeak-ng-1.51",
    "language": "en-US",
    "text": "Thanks for calling",
    "config": {"speed": 1.0},
}
texts = st.text(min_size=1, max_size=60).filter(lambda t: normalise_text(t) != "")


def test_payload_is_inspectable_and_versioned() -> None:
    payload = KeyParts(**BASE).payload()
    assert payload["v"] == KEY_VERSION and payload["text"] == "Thanks for calling"
    assert payload["language"] == "en-us" and payload["config"] == {"speed": 1.0}


def test_equal_inputs_give_equal_keys_across_processes() -> None:
    here = cache_key(**BASE)
    code = (
        "import json,sys; from audiocache.cache.keys import cache_key; "
        "print(cache_key(**json.loads(sys.argv[1])))"
    )
    there = subprocess.run(
        [sys.executable, "-c", code, json.dumps(BASE)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there


@given(text=texts, spaces=st.text(alphabet=" \t\n", min_size=1, max_size=3))
def test_whitespace_does_not_matter(text: str, spaces: str) -> None:
    padded = spaces + text.replace(" ", spaces) + spaces
    assert cache_key(**{**BASE, "text": text}) == cache_key(**{**BASE, "text": padded})


@given(speed=st.integers(min_value=1, max_value=4))
def test_int_and_float_numbers_are_one(speed: int) -> None:
    as_int = cache_key(**{**BASE, "config": {"speed": speed}})
    assert as_int == cache_key(**{**BASE, "config": {"speed": float(speed)}})


@given(
    field=st.sampled_from(["agent_id", "provider", "voice", "model", "language", "text"]),
    other=st.text(alphabet="abcdefghij-", min_size=1, max_size=12),
)
def test_any_identity_change_is_a_new_key(field: str, other: str) -> None:
    changed = {**BASE, field: other}
    if changed[field].strip().lower() == str(BASE[field]).strip().lower():
        return
    assert cache_key(**changed) != cache_key(**BASE)


NUMERIC = {"similarityBoost", "speed", "stability", "volume"}


@given(data=st.data(), field=st.sampled_from(SOUND_FIELDS))
def test_any_sound_field_change_is_a_new_key(data: st.DataObject, field: str) -> None:
    values = st.floats(0.01, 3.0) if field in NUMERIC else st.text(min_size=1, max_size=20)
    value = data.draw(values)
    if field == "speed" and value == 1.0:
        return
    config = {"speed": 1.0, field: value}
    assert cache_key(**{**BASE, "config": config}) != cache_key(**BASE)


def test_key_order_and_latency_only_fields_do_not_matter() -> None:
    a = cache_key(**{**BASE, "config": {"speed": 1.0, "stability": 0.5}})
    b = cache_key(**{**BASE, "config": {"stability": 0.5, "speed": 1.0, "instantMode": True}})
    assert a == b


def test_case_and_punctuation_do_matter() -> None:
    # They can change pronunciation ("US" vs "us", "Hello." vs "Hello?").
    assert cache_key(**{**BASE, "text": "thanks for calling"}) != cache_key(**BASE)
    assert cache_key(**{**BASE, "text": "Thanks for calling?"}) != cache_key(**BASE)


def test_unicode_is_nfc_normalised() -> None:
    decomposed = "Cafe\u0301"
    assert cache_key(**{**BASE, "text": decomposed}) == cache_key(**{**BASE, "text": "Café"})

"""The tuning model on its own: what it accepts, how a stored config is repaired, and that
nothing it lets through (or repairs) can crash an engine or the cache key."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import require_tool

from audiocache.cache.keys import cache_key, sound_config
from audiocache.cache.tuning import (
    MAX_SPEED,
    MAX_VOLUME,
    VoiceTuningConfig,
    rejected_fields,
    repair_tuning,
    validate_tuning,
)
from audiocache.errors import InvalidInput, InvalidSettings
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.espeak import EspeakEngine

REFERENCE = Path(__file__).parents[1] / "reference" / "agents-api-audio-cache.openapi.json"
NUMBERS = ("speed", "volume", "stability", "similarityBoost")


def test_contract_fields_and_wire_names() -> None:
    """The contract's VoiceTuningConfig, field for field (camelCase as on the wire)."""
    spec = REFERENCE.read_text(encoding="utf-8")
    reference = json.loads(spec)["components"]["schemas"]["VoiceTuningConfig"]
    assert set(VoiceTuningConfig.model_fields) == set(reference["properties"])
    schema = VoiceTuningConfig.model_json_schema()
    for name, spec in reference["properties"].items():
        ours = [s for s in schema["properties"][name]["anyOf"] if s["type"] != "null"]
        assert [s["type"] for s in ours] == [spec["type"]], name
        if spec["type"] == "number":
            assert {"minimum", "maximum"} <= set(ours[0]), name


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"volume": math.nan}, "volume"),
        ({"volume": math.inf}, "volume"),
        ({"speed": -math.inf}, "speed"),
        ({"volume": 1e308}, "volume"),
        ({"speed": "fast"}, "speed"),
        ({"speed": "1.0"}, "speed"),
        ({"volume": True}, "volume"),
        ({"stability": -0.1}, "stability"),
        ({"similarityBoost": 1.01}, "similarityBoost"),
        ({"speed": MAX_SPEED + 0.01}, "speed"),
        ({"speed": 0}, "speed"),
        ({"volume": MAX_VOLUME * 2}, "volume"),
        ({"modelId": 5}, "modelId"),
        ({"modelId": "m" * 201}, "modelId"),
        ({"instantMode": "yes"}, "instantMode"),
        ({"instantMode": 1}, "instantMode"),
        ({"pitch": {"a": 1}}, "pitch"),
        ({"pitch": math.nan}, "pitch"),
        ({"pitch": 10**400}, "pitch"),
        ({"pitch": "p" * 1001}, "pitch"),
    ],
)
def test_refused_with_the_field_named(config: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSettings) as caught:
        validate_tuning(config)
    assert f"config.{field}:" in caught.value.message
    assert rejected_fields(config) == [field]


def test_accepted_and_normalised() -> None:
    config = {"speed": 2, "volume": 0, "stability": 1, "instantMode": False, "style": "calm"}
    assert validate_tuning(config) == {
        "speed": 2.0,
        "volume": 0.0,
        "stability": 1.0,
        "instantMode": False,
        "style": "calm",
    }
    assert validate_tuning(None) == {} and validate_tuning({"emotion": None}) == {}
    with pytest.raises(InvalidSettings, match=r"settings\.config: must be a JSON object"):
        validate_tuning([1], where="settings.config")


def test_repair_drops_only_what_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    stored = {"volume": math.nan, "speed": "fast", "stability": 0.5, "modelId": "m1"}
    assert repair_tuning(stored, owner="voice v-test-1") == {"stability": 0.5, "modelId": "m1"}
    assert "voice v-test-1" in caplog.text and "speed, volume" in caplog.text
    caplog.clear()
    repair_tuning(stored, owner="voice v-test-1")
    assert not caplog.records  # once per owner and process
    assert repair_tuning("not an object") == {}
    assert repair_tuning({f"x{n}": n for n in range(40)} | {"speed": 1.5}) == {"speed": 1.5}


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
STORED = st.dictionaries(
    st.sampled_from([*VoiceTuningConfig.model_fields, "pitch", "style"]), JSON, max_size=8
)


@settings(max_examples=300, deadline=None)
@given(STORED)
def test_whatever_is_stored_repairs_to_a_valid_config(stored: dict[str, Any]) -> None:
    repaired = repair_tuning(stored)
    assert validate_tuning(repaired) == repaired
    for name in NUMBERS:
        if name in repaired:
            assert math.isfinite(repaired[name])
    # the key never fails on a stored config, repaired or not
    sound_config(stored)
    cache_key(
        agent_id="a",
        provider="espeak",
        voice="en-us",
        model="m",
        language="en",
        text="hi",
        config=stored,
    )


@settings(max_examples=200, deadline=None)
@given(STORED)
def test_espeak_takes_any_repaired_config(stored: dict[str, Any]) -> None:
    """espeak-ng's arguments from a repaired config: built, or refused with a 400, never an
    OverflowError or ValueError (what a stored 1e308 or NaN used to raise)."""
    require_tool("espeak-ng")
    engine = EspeakEngine()
    request = SynthesisRequest("Hello", "en-us", "en", repair_tuning(stored))
    try:
        args = engine._args(request)
    except InvalidInput:
        return
    assert all(isinstance(a, str) for a in args)

"""Tests for audiocache.audio.formats: the format table and request negotiation."""

from __future__ import annotations

import dataclasses

import pytest

from audiocache.audio.formats import FORMATS, OutputFormat, parse_output_format
from audiocache.errors import InvalidFormat, InvalidInput

RATES = (8000, 16000, 22050, 24000, 44100, 48000)
NAMES = {
    "wav",
    *(f"wav_{rate}" for rate in RATES),
    *(f"pcm_{rate}" for rate in RATES),
    "ulaw_8000",
    "alaw_8000",
    "wav_ulaw_8000",
    "wav_alaw_8000",
}


def test_format_names() -> None:
    assert set(FORMATS) == NAMES
    assert all(fmt.name == name for name, fmt in FORMATS.items())


@pytest.mark.parametrize("rate", RATES)
def test_pcm_formats(rate: int) -> None:
    assert FORMATS[f"wav_{rate}"] == OutputFormat(f"wav_{rate}", "wav", "pcm", rate, "audio/wav")
    raw = FORMATS[f"pcm_{rate}"]
    assert (raw.container, raw.encoding, raw.sample_rate) == ("raw", "pcm", rate)
    assert raw.media_type == f"audio/pcm;rate={rate};channels=1"


def test_g711_formats() -> None:
    ulaw, alaw = FORMATS["ulaw_8000"], FORMATS["alaw_8000"]
    assert (ulaw.container, ulaw.encoding, ulaw.sample_rate) == ("raw", "ulaw", 8000)
    assert (alaw.container, alaw.encoding, alaw.sample_rate) == ("raw", "alaw", 8000)
    assert ulaw.media_type == "audio/basic"  # RFC 2046: 8-bit mu-law, 8000 Hz, mono
    assert alaw.media_type == "audio/x-alaw-basic"
    for name, encoding in (("wav_ulaw_8000", "ulaw"), ("wav_alaw_8000", "alaw")):
        fmt = FORMATS[name]
        assert (fmt.container, fmt.encoding, fmt.sample_rate) == ("wav", encoding, 8000)
        assert fmt.media_type == "audio/wav"


def test_wav_is_passthrough_and_formats_are_frozen() -> None:
    wav = FORMATS["wav"]
    assert wav.passthrough and wav.sample_rate is None and wav.media_type == "audio/wav"
    assert not any(fmt.passthrough for name, fmt in FORMATS.items() if name != "wav")
    with pytest.raises(dataclasses.FrozenInstanceError):
        wav.sample_rate = 8000  # type: ignore[misc]


@pytest.mark.parametrize("name", [None, "", "   "])
def test_no_name_means_wav(name: str | None) -> None:
    assert parse_output_format(name) is FORMATS["wav"]
    assert parse_output_format(name, None) is FORMATS["wav"]


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_name_parses(name: str) -> None:
    assert parse_output_format(name) is FORMATS[name]
    assert parse_output_format(name.upper()) is FORMATS[name]


@pytest.mark.parametrize("name", ["mp3_44100", "pcm_11025", "ulaw_16000", "wav ulaw", "ulaw"])
def test_unknown_name_is_invalid_format(name: str) -> None:
    with pytest.raises(InvalidFormat) as caught:
        parse_output_format(name)
    error = caught.value
    assert isinstance(error, InvalidInput)
    assert (error.status, error.error_code) == (400, "INVALID_FORMAT")
    assert repr(name) in error.message
    assert all(valid in error.message for valid in NAMES)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("audio/basic", "ulaw_8000"),
        ("Audio/Basic", "ulaw_8000"),
        ("audio/basic, */*;q=0.1", "ulaw_8000"),
        ("audio/wav;q=0.5, audio/basic", "ulaw_8000"),
        ("audio/wav, audio/basic;q=0.5", "wav"),
        ("audio/basic;q=0", "wav"),
        ("audio/basic;q=oops", "wav"),
        ("audio/wav", "wav"),
        ("*/*", "wav"),
        ("audio/mpeg", "wav"),
        ("", "wav"),
        (",;,", "wav"),
    ],
)
def test_accept_header(accept: str, expected: str) -> None:
    assert parse_output_format(None, accept) is FORMATS[expected]


def test_explicit_name_wins_over_accept() -> None:
    assert parse_output_format("pcm_16000", "audio/basic") is FORMATS["pcm_16000"]
    assert parse_output_format("wav", "audio/basic") is FORMATS["wav"]
    with pytest.raises(InvalidFormat):
        parse_output_format("nope", "audio/basic")

"""Tests for audiocache.audio.wav: parsing uploads, building and normalising engine output."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import wave

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audiocache.audio.wav import build_wav, normalize_wav, parse_wav
from audiocache.errors import InvalidAudio


def wave_module_wav(frames: int, *, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    """A WAV written by the standard library, with a deterministic non-silent payload."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(bytes(i % 251 for i in range(frames * channels * width)))
    return buf.getvalue()


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt_body(
    tag: int = 1,
    channels: int = 1,
    rate: int = 8000,
    bits: int = 16,
    *,
    align: int | None = None,
    byte_rate: int | None = None,
) -> bytes:
    align = channels * bits // 8 if align is None else align
    byte_rate = rate * align if byte_rate is None else byte_rate
    return struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align, bits)


def extensible_fmt(sub_tag: int, channels: int = 2, rate: int = 48000, bits: int = 24) -> bytes:
    guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    ext = struct.pack("<HHI", 22, bits, 0x3) + struct.pack("<H", sub_tag) + guid_tail
    return fmt_body(0xFFFE, channels, rate, bits) + ext


def reject(data: bytes, *fragments: str) -> None:
    with pytest.raises(InvalidAudio) as excinfo:
        parse_wav(data)
    for fragment in fragments:
        assert fragment in excinfo.value.message


# --- accepted files -------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 2])
def test_pcm_from_wave_module(width: int, channels: int) -> None:
    data = wave_module_wav(22051, rate=22050, channels=channels, width=width)
    info = parse_wav(data)
    assert info.encoding == "pcm"
    assert (info.channels, info.sample_rate, info.bits_per_sample) == (channels, 22050, width * 8)
    assert info.block_align == channels * width
    assert info.frames == 22051
    assert info.duration == 22051 / 22050
    assert info.data_offset == 44
    assert info.data_size == len(data) - 44


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_build_wav_pcm_roundtrip(bits: int) -> None:
    audio = bytes(range(256)) * (bits // 8) * 3  # 768 frames per channel pair
    data = build_wav(audio, sample_rate=44100, channels=2, bits_per_sample=bits)
    info = parse_wav(data)
    assert info.frames == len(audio) // (2 * bits // 8)
    assert data[info.data_offset : info.data_offset + info.data_size] == audio
    assert normalize_wav(data) == data


@pytest.mark.parametrize(("encoding", "tag"), [("ulaw", 7), ("alaw", 6)])
def test_g711(encoding: str, tag: int) -> None:
    audio = bytes(range(255)) * 3 + b"\x7f" * 8  # 773 bytes: odd, so a pad byte is written
    data = build_wav(audio, sample_rate=8000, encoding=encoding)
    assert struct.unpack_from("<H", data, 20)[0] == tag
    assert b"fact" in data
    info = parse_wav(data)
    assert (info.encoding, info.bits_per_sample, info.channels) == (encoding, 8, 1)
    assert info.frames == 773
    assert info.duration == 773 / 8000
    assert data[info.data_offset : info.data_offset + info.data_size] == audio
    assert len(data) % 2 == 0


def test_extensible_pcm_accepted() -> None:
    data = riff(chunk(b"fmt ", extensible_fmt(1)), chunk(b"data", b"\1\2\3\4\5\6" * 100))
    info = parse_wav(data)
    assert (info.encoding, info.channels, info.bits_per_sample, info.frames) == ("pcm", 2, 24, 100)


def test_extensible_float_and_short_cbsize_rejected() -> None:
    reject(riff(chunk(b"fmt ", extensible_fmt(3)), chunk(b"data", b"\0" * 12)), "IEEE float")
    bad = bytearray(extensible_fmt(1))
    bad[16:18] = struct.pack("<H", 10)
    reject(riff(chunk(b"fmt ", bytes(bad)), chunk(b"data", b"\0" * 12)), "cbSize")


def test_list_chunk_before_data_skipped() -> None:
    listing = chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 6) + b"espeak")
    data = riff(chunk(b"fmt ", fmt_body()), listing, chunk(b"data", b"\0\1" * 50))
    info = parse_wav(data)
    assert info.frames == 50
    assert info.data_offset == len(data) - 100


def test_odd_sized_chunk_padding() -> None:
    data = riff(
        chunk(b"fmt ", fmt_body()),
        chunk(b"junk", b"abc"),  # 3 bytes + pad
        chunk(b"data", b"\0\1" * 10),
        chunk(b"cue ", b"xyz"),  # trailing odd chunk after data, padded too
    )
    assert parse_wav(data).frames == 10


def test_odd_final_chunk_missing_pad_byte_accepted() -> None:
    body = b"WAVE" + chunk(b"fmt ", fmt_body(bits=8)) + b"data" + struct.pack("<I", 7) + b"\x80" * 7
    data = b"RIFF" + struct.pack("<I", len(body) + 1) + body  # size counts the absent pad
    assert parse_wav(data).frames == 7


# --- rejected files -------------------------------------------------------------------------


def test_float_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body(3, bits=32)), chunk(b"data", b"\0" * 8)), "IEEE float")


def test_unknown_tag_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body(0x55)), chunk(b"data", b"\0" * 8)), "0x0055")


def test_truncated_data_chunk_rejected() -> None:
    full = wave_module_wav(1000)
    truncated = full[:-500]
    reject(truncated, "truncated")
    # also when the RIFF size was fixed up but the data size still lies
    fixed = b"RIFF" + struct.pack("<I", len(truncated) - 8) + truncated[8:]
    reject(fixed, "truncated", "data")


def test_lying_byte_rate_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body(byte_rate=12345)), chunk(b"data", b"\0" * 8)), "byte rate")


def test_lying_block_align_rejected() -> None:
    reject(
        riff(chunk(b"fmt ", fmt_body(channels=2, align=2)), chunk(b"data", b"\0" * 8)),
        "block align",
    )


def test_zero_channels_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body(channels=0)), chunk(b"data", b"\0" * 8)), "channels")


def test_bad_sample_rate_and_bits_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body(rate=999)), chunk(b"data", b"\0" * 8)), "sample rate")
    reject(riff(chunk(b"fmt ", fmt_body(bits=12)), chunk(b"data", b"\0" * 8)), "12 bits")
    reject(riff(chunk(b"fmt ", fmt_body(7, bits=16)), chunk(b"data", b"\0" * 8)), "ulaw")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFF",
        b"RIFF\x04\x00\x00\x00WAV",
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\0" * 100,
        b"OggS" + b"\0" * 100,
        b'{"text": "hello"}',
        b"hello world, not audio at all",
        b"RIFX" + wave_module_wav(10)[4:],
        b"RIFF\x24\x00\x00\x00AVI LIST" + b"\0" * 40,
    ],
)
def test_not_riff_wave_rejected(data: bytes) -> None:
    reject(data, "not a RIFF/WAVE file")


def test_empty_bytes_message() -> None:
    reject(b"", "not a RIFF/WAVE file", "0 bytes")


def test_partial_frame_rejected() -> None:
    data = riff(chunk(b"fmt ", fmt_body(channels=2)), chunk(b"data", b"\0" * 10))
    reject(data, "whole number")


def test_no_audio_rejected() -> None:
    reject(riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"")), "no audio")


def test_structure_errors() -> None:
    data_first = riff(chunk(b"data", b"\0" * 8), chunk(b"fmt ", fmt_body()))
    reject(data_first, "before the fmt")
    reject(riff(chunk(b"data", b"\0" * 8)), "before the fmt")
    reject(riff(chunk(b"fmt ", fmt_body())), "data chunk missing")
    reject(riff(chunk(b"LIST", b"INFO")), "fmt chunk missing")
    reject(riff(chunk(b"fmt ", fmt_body()[:14]), chunk(b"data", b"\0" * 8)), "fmt chunk is 14")
    two = riff(chunk(b"fmt ", fmt_body()), chunk(b"data", b"\0" * 8), chunk(b"data", b"\0" * 8))
    reject(two, "more than one data")


def test_riff_size_checks() -> None:
    good = wave_module_wav(100)
    reject(b"RIFF" + struct.pack("<I", 2) + good[8:], "too small")
    reject(b"RIFF" + struct.pack("<I", len(good)) + good[8:], "truncated")
    reject(good + b"\0" * 16, "trailing")


# --- normalize_wav --------------------------------------------------------------------------


def streamed(audio: bytes, placeholder: int, *, rate: int = 22050, listing: bool = False) -> bytes:
    """A header as `espeak-ng --stdout` writes it: sizes unknown when the header was sent."""
    extra = chunk(b"LIST", b"INFOjunk") if listing else b""
    return (
        b"RIFF"
        + struct.pack("<I", placeholder)
        + b"WAVE"
        + chunk(b"fmt ", fmt_body(rate=rate))
        + extra
        + b"data"
        + struct.pack("<I", placeholder)
        + audio
    )


@pytest.mark.parametrize("placeholder", [0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF024, 0])
def test_normalize_streamed_header(placeholder: int) -> None:
    audio = bytes(i % 256 for i in range(2 * 4410))
    data = streamed(audio, placeholder, listing=placeholder == 0)
    with pytest.raises(InvalidAudio):
        parse_wav(data)
    fixed = normalize_wav(data)
    info = parse_wav(fixed)
    assert (info.sample_rate, info.bits_per_sample, info.channels) == (22050, 16, 1)
    assert info.frames == 4410
    assert fixed[info.data_offset :] == audio


def test_normalize_trims_partial_frame() -> None:
    audio = b"\1\2" * 100 + b"\3"
    info = parse_wav(normalize_wav(streamed(audio, 0xFFFFFFFF)))
    assert info.frames == 100


def test_normalize_respects_real_data_size() -> None:
    # RIFF size is a placeholder but the data size is real and a trailing chunk follows
    body = chunk(b"fmt ", fmt_body()) + chunk(b"data", b"\1\2" * 30) + chunk(b"LIST", b"INFO")
    data = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + body
    fixed = normalize_wav(data)
    info = parse_wav(fixed)
    assert info.frames == 30
    assert fixed[info.data_offset :] == b"\1\2" * 30


def test_normalize_returns_wellformed_unchanged() -> None:
    good = wave_module_wav(321, channels=2)
    assert normalize_wav(good) == good


def test_normalize_rejects_unusable() -> None:
    for data in (
        b"",
        b"not audio",
        streamed(b"", 0xFFFFFFFF),
        streamed(b"\1", 0xFFFFFFFF),
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + chunk(b"LIST", b"INFO"),
        b"RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff" + b"\0" * 100,
    ):
        with pytest.raises(InvalidAudio):
            normalize_wav(data)
    bad_fmt = b"RIFF\xff\xff\xff\xffWAVE" + chunk(b"fmt ", fmt_body(3, bits=32)) + b"data\0\0\0\0"
    with pytest.raises(InvalidAudio, match="IEEE float"):
        normalize_wav(bad_fmt + b"\0" * 64)


def test_espeak_ng_output() -> None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("espeak-ng is required under CI but is not on PATH")
        pytest.skip("espeak-ng not installed")
    out = subprocess.run(
        [exe, "--stdout", "hello world"], capture_output=True, check=True, timeout=30
    ).stdout
    info = parse_wav(normalize_wav(out))
    assert (info.sample_rate, info.bits_per_sample, info.channels) == (22050, 16, 1)
    assert 0.3 < info.duration < 3


# --- build_wav argument errors --------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"encoding": "mp3"},
        {"bits_per_sample": 12},
        {"channels": 0},
        {"channels": 9},
        {"sample_rate": 500},
    ],
)
def test_build_wav_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"sample_rate": 8000, **kwargs}
    with pytest.raises(ValueError):
        build_wav(b"\0" * 48, **args)  # type: ignore[arg-type]


def test_build_wav_partial_frame() -> None:
    with pytest.raises(ValueError, match="whole number"):
        build_wav(b"\0" * 5, sample_rate=8000, bits_per_sample=16)


# --- fuzzing: only InvalidAudio may escape ----------------------------------------------------

SEEDS = [
    wave_module_wav(40, channels=2, width=3),
    build_wav(b"\x55" * 33, sample_rate=8000, encoding="ulaw"),
    riff(chunk(b"fmt ", extensible_fmt(1)), chunk(b"LIST", b"abc"), chunk(b"data", b"\0" * 24)),
    streamed(b"\0\1" * 20, 0xFFFFFFFF),
]


@st.composite
def mutated_wavs(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["byte", "u32", "truncate", "insert"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "byte" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "u32":
            value = draw(st.sampled_from([0, 1, 2, 3, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFE, 40]))
            data[pos : pos + 4] = struct.pack("<I", value)
        elif kind == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(max_size=16))
    if len(data) >= 12 and draw(st.booleans()):  # mostly keep the magic so the walk is reached
        data[0:4], data[8:12] = b"RIFF", b"WAVE"
    return bytes(data)


def check_only_invalid_audio(data: bytes) -> None:
    try:
        info = parse_wav(data)
    except InvalidAudio:
        pass
    else:
        assert info.frames > 0
        assert info.data_offset + info.data_size <= len(data)
    try:
        fixed = normalize_wav(data)
    except InvalidAudio:
        pass
    else:
        assert parse_wav(fixed).frames > 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=200), mutated_wavs()))
def test_fuzz_only_invalid_audio(data: bytes) -> None:
    check_only_invalid_audio(data)

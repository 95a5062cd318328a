"""Tests for audiocache.audio.g711: ITU-T G.711 bounds, code tables, and agreement with sox."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from audiocache.audio.g711 import (
    ALAW_DECODE,
    ULAW_DECODE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from audiocache.audio.wav import build_wav

Encoder = Callable[[npt.ArrayLike], npt.NDArray[np.uint8]]
Decoder = Callable[[npt.ArrayLike], npt.NDArray[np.int16]]

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = np.arange(256, dtype=np.uint8)

# The standard segment tables on the 16-bit magnitude: (first magnitude, step) per segment.
# mu-law: segment e holds magnitudes m with m + 0x84 in [2**(e+7), 2**(e+8)), step 2**(e+3).
ULAW_SEGMENTS = [(0, 8), (124, 16), (380, 32), (892, 64), (1916, 128), (3964, 256)]
ULAW_SEGMENTS += [(8060, 512), (16252, 1024)]
ULAW_CLIP, ULAW_MAX = 32635, 32124  # input clip level, largest reconstruction level
# A-law: segments 0 and 1 both step 16, then the step doubles with each segment.
ALAW_SEGMENTS = [(0, 16), (256, 16), (512, 32), (1024, 64), (2048, 128), (4096, 256)]
ALAW_SEGMENTS += [(8192, 512), (16384, 1024)]


def half_step(magnitude: np.ndarray, segments: list[tuple[int, int]]) -> np.ndarray:
    starts = np.array([start for start, _ in segments])
    steps = np.array([step for _, step in segments])
    return steps[np.searchsorted(starts, magnitude, side="right") - 1] // 2


def test_ulaw_round_trip_error_is_within_half_a_segment_step_for_every_int16() -> None:
    x = ALL_INT16.astype(np.int64)
    error = np.abs(ulaw_decode(ulaw_encode(ALL_INT16)).astype(np.int64) - x)
    magnitude = np.abs(x)
    inside = magnitude <= ULAW_CLIP
    bound = half_step(np.minimum(magnitude, ULAW_CLIP), ULAW_SEGMENTS)
    assert (error[inside] <= bound[inside]).all()
    # above the clip level the codec saturates at its largest level
    assert (error[~inside] == magnitude[~inside] - ULAW_MAX).all()


def test_alaw_round_trip_error_is_within_half_a_segment_step_for_every_int16() -> None:
    x = ALL_INT16.astype(np.int64)
    error = np.abs(alaw_decode(alaw_encode(ALL_INT16)).astype(np.int64) - x)
    bound = half_step(np.minimum(np.abs(x), 32767), ALAW_SEGMENTS)
    assert (error <= bound).all()
    assert error.max() == 512  # -32768: the top segment's half step, no overload


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_encoding_is_monotonic(encode: Encoder, decode: Decoder) -> None:
    assert (np.diff(decode(encode(ALL_INT16)).astype(np.int32)) >= 0).all()


def test_ulaw_decode_then_encode_is_identity_except_negative_zero() -> None:
    back = ulaw_encode(ulaw_decode(ALL_CODES))
    expected = ALL_CODES.copy()
    expected[0x7F] = 0xFF  # 0x7F is "negative zero"; zero encodes as 0xFF
    assert (back == expected).all()
    assert ULAW_DECODE[0x7F] == ULAW_DECODE[0xFF] == 0


def test_alaw_decode_then_encode_is_identity_for_all_codes() -> None:
    assert (alaw_encode(alaw_decode(ALL_CODES)) == ALL_CODES).all()


def test_decode_tables_have_the_standard_values() -> None:
    assert ULAW_DECODE.shape == ALAW_DECODE.shape == (256,)
    assert ULAW_DECODE.dtype == ALAW_DECODE.dtype == np.int16
    assert (ULAW_DECODE[0x00], ULAW_DECODE[0x80]) == (-32124, 32124)
    assert (ULAW_DECODE[0xFE], ULAW_DECODE[0x7E]) == (8, -8)
    assert (ALAW_DECODE[0xD5], ALAW_DECODE[0x55]) == (8, -8)
    assert (ALAW_DECODE[0xAA], ALAW_DECODE[0x2A]) == (32256, -32256)
    assert len(set(ULAW_DECODE.tolist())) == 255 and len(set(ALAW_DECODE.tolist())) == 256
    with pytest.raises(ValueError):
        ULAW_DECODE[0] = 1


def test_well_known_codes() -> None:
    assert ulaw_encode([0, -1, 32767, -32768]).tolist() == [0xFF, 0x7F, 0x80, 0x00]
    assert alaw_encode([0, -1, 32767, -32768]).tolist() == [0xD5, 0x55, 0xAA, 0x2A]
    assert ulaw_decode(b"\xff\x00").tolist() == [0, -32124]


def require_sox() -> str:
    path = shutil.which("sox")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("sox is required under CI but is not on PATH")
        pytest.skip("sox is not installed")
    return path


def sox_encode(tmp_path: Path, samples: np.ndarray, encoding: str) -> np.ndarray:
    """Encode 8 kHz int16 samples with sox. ``-D``: sox otherwise dithers down to 14/13 bits."""
    src, out = tmp_path / "in.wav", tmp_path / f"out.{encoding}"
    src.write_bytes(build_wav(samples.astype("<i2").tobytes(), sample_rate=8000))
    command = [require_sox(), "-D", str(src), "-e", encoding, "-r", "8000", "-t", "raw", str(out)]
    subprocess.run(command, check=True, capture_output=True)
    return np.frombuffer(out.read_bytes(), dtype=np.uint8)


def sox_grid(x: np.ndarray, bits: int) -> np.ndarray:
    """What sox feeds its codec: x rounded half up to ``bits`` bits, clipped at the top."""
    scale = 1 << (16 - bits)
    q = np.minimum((x.astype(np.int64) + scale // 2) // scale, (1 << (bits - 1)) - 1)
    return (q * scale).astype(np.int16)


def level(decoded: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Rank of each reconstruction value among the codec's distinct levels."""
    return np.searchsorted(np.unique(table), decoded)


@pytest.mark.parametrize(
    ("encoding", "bits", "encode", "table", "max_fraction"),
    [("u-law", 14, ulaw_encode, ULAW_DECODE, 0.01), ("a-law", 13, alaw_encode, ALAW_DECODE, 0.02)],
)
def test_codec_agrees_with_sox(
    tmp_path: Path,
    encoding: str,
    bits: int,
    encode: Encoder,
    table: np.ndarray,
    max_fraction: float,
) -> None:
    rng = np.random.default_rng(711)
    noise = np.clip(rng.normal(0, 6000, 20000), -32768, 32767).astype(np.int16)
    x = np.concatenate([ALL_INT16, noise])
    theirs = sox_encode(tmp_path, x, encoding)
    assert len(theirs) == len(x)
    # Same companding tables: byte for byte once the input sits on sox's 14/13-bit grid.
    assert (encode(sox_grid(x, bits)) == theirs).all()
    # On raw 16-bit input sox rounds twice; the difference is bounded: adjacent levels only,
    # sox's code is ours for an input within 2 (mu) / 4 (A) LSBs, and it is rare.
    ours = encode(x)
    differ = ours != theirs
    shift = np.abs(level(table[ours], table) - level(table[theirs], table))
    assert shift.max() <= 1
    reach = 1 << (15 - bits)  # sox's rounding moves a sample by at most this many LSBs
    wide = x.astype(np.int64)
    nearby = [encode(np.clip(wide + k, -32768, 32767)) for k in range(-reach, reach + 1)]
    assert (np.stack(nearby) == theirs).any(axis=0).all()
    # over the uniform sweep of all int16 values: 0.6% (mu-law), 1.6% (A-law)
    assert differ[: len(ALL_INT16)].mean() <= max_fraction

"""Convert a stored WAV to an output format: decode, downmix, resample, quantise, encode.

Every converted format is **mono**: telephony (G.711) is mono by definition and voice
output has no use for stereo, so channels are averaged (a mean, which cannot clip). The
resampler is libsoxr (``soxr``, quality HQ: 20-bit precision, a linear-phase filter whose
delay soxr removes, so sample 0 stays at time 0); HQ is well above the 16-bit output and
takes a third to a half of VHQ's time. Float samples become int16 by rounding and clipping (never
wrapping), and the output has exactly ``round(frames * out_rate / in_rate)`` frames: the
resampler's length is padded or trimmed by at most a sample or two to guarantee it.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from audiocache.audio.encode import ENCODERS, encode
from audiocache.audio.formats import OutputFormat
from audiocache.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from audiocache.audio.wav import WavInfo, build_wav, parse_wav

__all__ = ["RESAMPLE_QUALITY", "decode_to_float", "output_frames", "to_int16", "transcode"]

RESAMPLE_QUALITY = "HQ"

Float32Array = npt.NDArray[np.float32]
Int16Array = npt.NDArray[np.int16]


def _interleaved(raw: npt.NDArray[np.uint8], info: WavInfo) -> Float32Array:
    """Decode the data chunk's bytes to float32 in [-1, 1), still interleaved."""
    if info.encoding == "ulaw":
        return ulaw_decode(raw).astype(np.float32) / np.float32(32768)
    if info.encoding == "alaw":
        return alaw_decode(raw).astype(np.float32) / np.float32(32768)
    bits = info.bits_per_sample
    if bits == 8:  # WAV 8-bit PCM is unsigned, 128 = silence
        return (raw.astype(np.float32) - np.float32(128)) / np.float32(128)
    if bits == 16:
        return raw.view("<i2").astype(np.float32) / np.float32(1 << 15)
    if bits == 24:
        b = raw.reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        value -= (value & 0x800000) << 1  # sign-extend 24 -> 32 bits
        return value.astype(np.float32) / np.float32(1 << 23)
    if bits == 32:
        return (raw.view("<i4").astype(np.float64) / float(1 << 31)).astype(np.float32)
    raise ValueError(f"unsupported PCM width {bits}")  # parse_wav admits only 8/16/24/32


def decode_to_float(wav: bytes) -> tuple[Float32Array, int]:
    """Decode a WAV to mono float32 samples in [-1, 1) and its sample rate.

    Accepts whatever ``parse_wav`` accepts (PCM 8-bit unsigned, 16/24/32-bit signed,
    mu-law, A-law; 1..8 channels, averaged to mono). Raises InvalidAudio on a bad file.
    """
    info = parse_wav(wav)
    raw = np.frombuffer(wav, dtype=np.uint8, count=info.data_size, offset=info.data_offset)
    samples = _interleaved(raw, info)
    if info.channels > 1:
        samples = samples.reshape(-1, info.channels).mean(axis=1, dtype=np.float32)
    return np.ascontiguousarray(samples, dtype=np.float32), info.sample_rate


def output_frames(frames: int, in_rate: int, out_rate: int) -> int:
    """Frames after resampling ``frames`` from ``in_rate`` to ``out_rate``: the rounded ratio."""
    return round(frames * out_rate / in_rate)


def _resample(samples: Float32Array, in_rate: int, out_rate: int) -> Float32Array:
    target = output_frames(len(samples), in_rate, out_rate)
    if in_rate == out_rate:
        return samples
    out: Float32Array = soxr.resample(samples, in_rate, out_rate, quality=RESAMPLE_QUALITY)
    if len(out) > target:
        return out[:target]
    if len(out) < target:
        padded: Float32Array = np.concatenate([out, np.zeros(target - len(out), dtype=out.dtype)])
        return padded
    return out


def to_int16(samples: npt.NDArray[np.floating]) -> Int16Array:
    """Float samples (full scale = 1.0) to int16, rounded to nearest and clipped."""
    scaled = np.rint(np.asarray(samples) * 32768)  # a power of two: exact in float32
    clipped: Int16Array = np.clip(scaled, -32768, 32767).astype("<i2")
    return clipped


def transcode(wav: bytes, fmt: OutputFormat) -> bytes:
    """Convert a stored WAV to ``fmt``; ``wav`` (passthrough) returns the input unchanged.

    Raises InvalidAudio if the stored bytes are not a WAV ``parse_wav`` accepts.
    """
    if fmt.sample_rate is None:
        return wav
    samples, rate = decode_to_float(wav)
    pcm = to_int16(_resample(samples, rate, fmt.sample_rate))
    if fmt.container in ENCODERS:
        return encode(pcm, fmt.sample_rate, fmt.container)
    if fmt.encoding == "ulaw":
        audio = ulaw_encode(pcm).tobytes()
    elif fmt.encoding == "alaw":
        audio = alaw_encode(pcm).tobytes()
    else:
        audio = pcm.tobytes()
    if fmt.container == "raw":
        return audio
    return build_wav(audio, sample_rate=fmt.sample_rate, encoding=fmt.encoding)

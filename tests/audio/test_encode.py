"""MP3, Opus (Ogg) and FLAC out of transcode(): decoded back, they are the input's sound."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from audiocache.audio.formats import ENCODED_FORMATS, OutputFormat
from audiocache.audio.transcode import to_int16, transcode
from audiocache.audio.wav import build_wav

MAGIC = {"mp3_24000": (b"\xff", b"ID3"), "opus_24000": (b"OggS",), "flac_24000": (b"fLaC",)}


def _tone(rate: int, seconds: float, freq: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return build_wav(to_int16(0.5 * np.sin(2 * np.pi * freq * t)).tobytes(), sample_rate=rate)


@pytest.mark.parametrize("fmt", ENCODED_FORMATS.values(), ids=lambda f: f.name)
@pytest.mark.parametrize("in_rate", [16000, 22050, 48000])
def test_encoded_formats_decode_to_the_same_tone(fmt: OutputFormat, in_rate: int) -> None:
    out = transcode(_tone(in_rate, 1.5), fmt)
    assert out.startswith(MAGIC[fmt.name])
    samples, rate = sf.read(io.BytesIO(out), dtype="float32")
    assert rate == 24000 and samples.ndim == 1
    assert abs(len(samples) / rate - 1.5) < 0.08  # codec padding, at most a few frames
    middle = samples[2400:-2400]
    spectrum = np.abs(np.fft.rfft(middle))
    peak = np.argmax(spectrum) * rate / (2 * (len(spectrum) - 1))
    assert abs(peak - 440) < 5
    rms = float(np.sqrt(np.mean(middle.astype(np.float64) ** 2)))
    assert abs(rms - 0.5 / np.sqrt(2)) < 0.03  # loudness kept


def test_flac_is_lossless() -> None:
    wav = _tone(24000, 0.5)
    samples, _rate = sf.read(
        io.BytesIO(transcode(wav, ENCODED_FORMATS["flac_24000"])), dtype="int16"
    )
    assert samples.tobytes() == wav[44:]


def test_compressed_formats_are_smaller_than_pcm() -> None:
    wav = _tone(24000, 2.0)
    assert len(transcode(wav, ENCODED_FORMATS["mp3_24000"])) < len(wav) / 5
    assert len(transcode(wav, ENCODED_FORMATS["opus_24000"])) < len(wav) / 5

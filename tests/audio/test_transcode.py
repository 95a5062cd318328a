"""Tests for audiocache.audio.transcode: quality, exact durations, decoding every input kind."""

from __future__ import annotations

import numpy as np
import pytest

from audiocache.audio.formats import FORMATS, OutputFormat
from audiocache.audio.g711 import alaw_decode, ulaw_decode
from audiocache.audio.transcode import decode_to_float, output_frames, to_int16, transcode
from audiocache.audio.wav import build_wav, parse_wav
from audiocache.errors import InvalidAudio

CONVERTED = [fmt for fmt in FORMATS.values() if not fmt.passthrough]


def pcm16_wav(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    return build_wav(samples.astype("<i2").tobytes(), sample_rate=rate, channels=channels)


def sine(freq: float, rate: int, frames: int, amplitude: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(frames) / rate)


def int16_samples(data: bytes, fmt: OutputFormat) -> np.ndarray:
    """Decode a transcode() result back to int16 samples, checking its container."""
    if fmt.container == "wav":
        info = parse_wav(data)
        data = data[info.data_offset : info.data_offset + info.data_size]
    if fmt.encoding == "ulaw":
        return ulaw_decode(data)
    if fmt.encoding == "alaw":
        return alaw_decode(data)
    return np.frombuffer(data, dtype="<i2")


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 8000), (22050, 16000), (16000, 48000)])
def test_resampled_sine_keeps_40_db_snr(in_rate: int, out_rate: int) -> None:
    wav = pcm16_wav(to_int16(sine(1000, in_rate, in_rate)), in_rate)
    out = int16_samples(transcode(wav, FORMATS[f"pcm_{out_rate}"]), FORMATS[f"pcm_{out_rate}"])
    ideal = sine(1000, out_rate, len(out)) * 32768
    edge = 64  # the filter's start-up and tail transients
    signal, noise = ideal[edge:-edge], out[edge:-edge] - ideal[edge:-edge]
    snr = 10 * np.log10(np.sum(signal**2) / np.sum(noise**2))
    assert snr >= 40, f"SNR {snr:.1f} dB"


@pytest.mark.parametrize("fmt", CONVERTED, ids=lambda fmt: fmt.name)
def test_durations_are_preserved_to_the_sample(fmt: OutputFormat) -> None:
    assert fmt.sample_rate is not None
    for in_rate in (8000, 11025, 16000, 22050, 24000, 44100, 48000):
        for frames in (7, 1001, 12345):
            wav = pcm16_wav(to_int16(sine(440, in_rate, frames)), in_rate)
            expected = round(frames * fmt.sample_rate / in_rate)
            assert output_frames(frames, in_rate, fmt.sample_rate) == expected
            out = transcode(wav, fmt)
            if fmt.container == "wav":
                info = parse_wav(out)
                assert (info.encoding, info.sample_rate) == (fmt.encoding, fmt.sample_rate)
                assert (info.channels, info.frames) == (1, expected)
                assert info.bits_per_sample == (16 if fmt.encoding == "pcm" else 8)
            else:
                assert len(out) == expected * (2 if fmt.encoding == "pcm" else 1)


def test_example_from_the_contract() -> None:
    wav = pcm16_wav(to_int16(sine(300, 22050, 12345)), 22050)
    assert len(transcode(wav, FORMATS["ulaw_8000"])) == round(12345 * 8000 / 22050) == 4479


def test_wav_is_returned_unchanged() -> None:
    wav = pcm16_wav(to_int16(sine(440, 22050, 1000)), 22050, channels=1)
    assert transcode(wav, FORMATS["wav"]) is wav


def test_same_rate_pcm_is_bit_exact() -> None:
    samples = np.random.default_rng(1).integers(-32768, 32768, 4000).astype(np.int16)
    wav = pcm16_wav(samples, 16000)
    assert transcode(wav, FORMATS["pcm_16000"]) == samples.astype("<i2").tobytes()
    assert transcode(wav, FORMATS["wav_16000"]) == wav


def test_g711_input_converts_back_to_the_same_codes() -> None:
    codes = np.arange(256, dtype=np.uint8).repeat(3)
    for encoding in ("ulaw", "alaw"):
        wav = build_wav(codes.tobytes(), sample_rate=8000, encoding=encoding)
        out = np.frombuffer(transcode(wav, FORMATS[f"{encoding}_8000"]), dtype=np.uint8)
        expected = codes.copy()
        if encoding == "ulaw":
            expected[expected == 0x7F] = 0xFF  # negative zero comes back as zero
        assert (out == expected).all()


def test_stereo_is_downmixed_to_the_mean() -> None:
    rng = np.random.default_rng(2)
    stereo = rng.integers(-32768, 32768, (3000, 2)).astype(np.int16)
    wav = pcm16_wav(stereo.reshape(-1), 16000, channels=2)
    out = np.frombuffer(transcode(wav, FORMATS["pcm_16000"]), dtype="<i2")
    assert (out == np.rint(stereo.astype(np.float64).mean(axis=1))).all()
    info = parse_wav(transcode(wav, FORMATS["wav_8000"]))
    assert (info.channels, info.frames) == (1, 1500)
    samples, rate = decode_to_float(pcm16_wav(np.array([1000, -1000] * 50), 8000, channels=2))
    assert rate == 8000 and samples.shape == (50,) and not samples.any()


def test_8_bit_unsigned_input() -> None:
    wav = build_wav(bytes([0, 128, 255, 64]), sample_rate=8000, bits_per_sample=8)
    samples, rate = decode_to_float(wav)
    assert rate == 8000 and samples.dtype == np.float32
    assert samples.tolist() == [-1.0, 0.0, 127 / 128, -0.5]
    out = np.frombuffer(transcode(wav, FORMATS["pcm_8000"]), dtype="<i2")
    assert out.tolist() == [-32768, 0, 32512, -16384]


def test_24_bit_input() -> None:
    values = np.array([-(1 << 23), -1, 0, 1, (1 << 23) - 1, 0x123456, -0x123456, 0x7F80])
    raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in values)
    wav = build_wav(raw, sample_rate=16000, bits_per_sample=24)
    samples, rate = decode_to_float(wav)
    assert rate == 16000
    assert (samples.astype(np.float64) * (1 << 23) == values).all()
    out = np.frombuffer(transcode(wav, FORMATS["pcm_16000"]), dtype="<i2")
    # rounded to 16 bits and clipped at the top: 8388607 / 256 = 32767.996 -> 32767
    assert out.tolist() == [-32768, 0, 0, 0, 32767, 0x1234, -0x1234, 0x80]


def test_32_bit_input() -> None:
    values = np.array([-(1 << 31), (1 << 31) - 1, 0, 1 << 16, -(3 << 15)], dtype="<i4")
    wav = build_wav(values.tobytes(), sample_rate=8000, bits_per_sample=32)
    out = np.frombuffer(transcode(wav, FORMATS["pcm_8000"]), dtype="<i2")
    assert out.tolist() == [-32768, 32767, 0, 1, -2]  # -1.5 rounds half to even


def test_to_int16_rounds_and_clips_without_wrapping() -> None:
    lsb = 1 / 32768
    floats = np.array([0.4 * lsb, 0.6 * lsb, -0.6 * lsb, 1.0, 1.7, -1.0, -3.0, 0.99999])
    assert to_int16(floats).tolist() == [0, 1, -1, 32767, 32767, -32768, -32768, 32767]


def test_full_scale_square_wave_clips_instead_of_wrapping() -> None:
    rate, frames = 22050, 22050
    square = np.where(np.sin(2 * np.pi * 100 * np.arange(frames) / rate) >= 0, 32767, -32768)
    wav = pcm16_wav(square, rate)
    out = np.frombuffer(transcode(wav, FORMATS["pcm_8000"]), dtype="<i2").astype(np.int32)
    ideal = np.where(np.sin(2 * np.pi * 100 * np.arange(len(out)) / 8000) >= 0, 32767, -32768)
    assert out.max() == 32767 and out.min() == -32768  # the Gibbs overshoot was clipped
    # Away from the edges every sample keeps its sign; a wrap-around would flip it.
    steady = np.convolve(np.abs(np.diff(ideal, prepend=ideal[0])), np.ones(11), "same") == 0
    assert (np.sign(out[steady]) == np.sign(ideal[steady])).all()


def test_invalid_stored_audio_raises_invalid_audio() -> None:
    with pytest.raises(InvalidAudio):
        transcode(b"not a wav file", FORMATS["ulaw_8000"])
    with pytest.raises(InvalidAudio):
        decode_to_float(b"RIFF")

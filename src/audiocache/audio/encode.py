"""Compressed output: MP3, Opus in Ogg and FLAC, encoded by libsndfile (``soundfile``).

libsndfile is maintained, ships inside the ``soundfile`` wheel (1.2.x: MP3 through LAME and
mpg123 since 1.1.0, Opus through libopus), and writes to memory, so no encoder process or
temporary file is involved. Every encoded format is mono 16-bit at the format's rate; Opus
takes only 8/12/16/24/48 kHz, which is why these formats are offered at 24 kHz (OpenAI's).
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import soundfile as sf

__all__ = ["ENCODERS", "encode"]

# container -> (libsndfile major format, subtype)
ENCODERS = {
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "ogg": ("OGG", "OPUS"),
    "flac": ("FLAC", "PCM_16"),
}


def encode(pcm: npt.NDArray[np.int16], sample_rate: int, container: str) -> bytes:
    """Mono int16 samples as a complete file of ``container`` (a key of ``ENCODERS``)."""
    major, subtype = ENCODERS[container]
    out = io.BytesIO()
    with sf.SoundFile(
        out, "w", samplerate=sample_rate, channels=1, format=major, subtype=subtype
    ) as file:
        file.write(pcm)
    return out.getvalue()

"""Raw 16-bit mono PCM resampled as it arrives, for a miss streamed in a fixed rate.

Engines stream at their own rate (espeak-ng 22.05 kHz, Piper per voice); a client that asked
for OpenAI's ``pcm`` expects 24 kHz. libsoxr's streaming resampler (the same library and
quality as ``transcode.py``) keeps its filter state across chunks, so the joined output is
what resampling the whole clip would give, up to the filter's edge at the very end.
"""

from __future__ import annotations

import numpy as np
import soxr

from audiocache.audio.transcode import RESAMPLE_QUALITY


class PcmResampler:
    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate, self.out_rate = in_rate, out_rate
        self._odd = b""  # a chunk may end inside a sample: its first byte waits for the next
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=RESAMPLE_QUALITY)
        )

    def feed(self, chunk: bytes, *, last: bool = False) -> bytes:
        data = self._odd + chunk
        cut = len(data) // 2 * 2
        data, self._odd = data[:cut], data[cut:]
        if self._stream is None:
            return data
        samples = np.frombuffer(data, dtype="<i2")
        out = self._stream.resample_chunk(samples, last=last)
        return np.asarray(out, dtype="<i2").tobytes()

    def flush(self) -> bytes:
        """What the filter still holds; call once, at the end."""
        self._odd = b""
        return self.feed(b"", last=True)

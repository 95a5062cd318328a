"""A request body sent as it is read: an archive (a path, an open file or bytes) streamed in
chunks, never whole in memory, each chunk told to an optional progress callback."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

UPLOAD_CHUNK = 1024 * 1024
Source = bytes | Path | IO[bytes]
OnChunk = Callable[[int], None]


@dataclass(frozen=True)
class Upload:
    """``source`` read ``UPLOAD_CHUNK`` bytes at a time; ``on_chunk(n)`` after each chunk is
    read, as it is handed to the connection (a progress bar). An open file is read from
    where it stands and left open (its owner closes it)."""

    source: Source
    on_chunk: OnChunk | None = None

    def size(self) -> int | None:
        """The bytes to send, when known: sent as Content-Length, so a server refuses an
        archive past its limit before a byte of it travels. None: sent chunked."""
        if isinstance(self.source, bytes):
            return len(self.source)
        if isinstance(self.source, Path):
            return self.source.stat().st_size
        try:
            found = os.fstat(self.source.fileno())
            if not stat.S_ISREG(found.st_mode):
                return None  # a pipe or a socket: its length is unknown
            return max(found.st_size - self.source.tell(), 0)
        except (AttributeError, OSError, ValueError):
            return None  # an in-memory stream without a descriptor

    def headers(self) -> dict[str, str]:
        size = self.size()
        return {} if size is None else {"Content-Length": str(size)}

    def chunks(self) -> Iterator[bytes]:
        if isinstance(self.source, bytes):
            view = memoryview(self.source)
            for start in range(0, len(view), UPLOAD_CHUNK):
                yield self._told(bytes(view[start : start + UPLOAD_CHUNK]))
        elif isinstance(self.source, Path):
            with self.source.open("rb") as handle:
                yield from self._read(handle)
        else:
            yield from self._read(self.source)

    async def achunks(self) -> AsyncIterator[bytes]:
        # A 1 MiB read from the page cache at a time: fine on the event loop.
        for chunk in self.chunks():
            yield chunk

    def _read(self, handle: IO[bytes]) -> Iterator[bytes]:
        while chunk := handle.read(UPLOAD_CHUNK):
            yield self._told(chunk)

    def _told(self, chunk: bytes) -> bytes:
        if self.on_chunk is not None:
            self.on_chunk(len(chunk))
        return chunk

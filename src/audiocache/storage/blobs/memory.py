"""An in-memory blob store: a real class that passes the same conformance suite (for tests)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

from audiocache.storage.blobs.base import CHUNK, BlobInfo, StoredBlob, sha256_hex


class MemoryBlobStore:
    def __init__(self) -> None:
        self._blobs: dict[str, tuple[bytes, float]] = {}

    async def put(self, data: bytes) -> BlobInfo:
        sha = sha256_hex(data)
        self._blobs.setdefault(sha, (bytes(data), time.time()))
        return BlobInfo(sha, len(data))

    async def stat(self, sha256: str) -> BlobInfo | None:
        found = self._blobs.get(sha256)
        return BlobInfo(sha256, len(found[0])) if found else None

    async def read(self, sha256: str) -> bytes | None:
        found = self._blobs.get(sha256)
        return found[0] if found else None

    async def open_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        found = self._blobs.get(sha256)
        if found is None:
            raise KeyError(sha256)
        data = found[0][start:end]
        for offset in range(0, len(data), chunk_size):
            yield data[offset : offset + chunk_size]

    async def delete(self, sha256: str) -> None:
        self._blobs.pop(sha256, None)

    async def iter_blobs(self) -> AsyncIterator[StoredBlob]:
        now = time.time()
        for sha, (data, created) in list(self._blobs.items()):
            yield StoredBlob(sha, len(data), now - created)

    def local_path(self, sha256: str) -> Path | None:
        return None

    async def close(self) -> None:
        return None

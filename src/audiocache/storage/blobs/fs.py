"""Blobs as files under ``<root>/<sha[:2]>/<sha>``, written temp-file → fsync → rename."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread

from audiocache.errors import StorageFull, StorageUnavailable
from audiocache.storage.blobs.base import CHUNK, BlobInfo, StoredBlob, is_sha256, sha256_hex

_TMP_PREFIX = ".tmp-"


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)

    def _path(self, sha256: str) -> Path:
        return Path(self._file(sha256))

    def _file(self, sha256: str) -> str:
        # A plain string: the hot path stats and opens it, and pathlib costs more than both.
        if not is_sha256(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return f"{self._root}/{sha256[:2]}/{sha256}"

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    async def put(self, data: bytes) -> BlobInfo:
        sha = sha256_hex(data)
        await anyio.to_thread.run_sync(self._put_sync, sha, data)
        return BlobInfo(sha, len(data))

    def _put_sync(self, sha: str, data: bytes) -> None:
        target = self._path(sha)
        if target.exists() and target.stat().st_size == len(data):
            return
        directory = target.parent
        tmp: Path | None = None
        try:
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f"{_TMP_PREFIX}{sha}-{os.getpid()}-{time.monotonic_ns()}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            tmp = None
            _fsync_dir(directory)
        except OSError as exc:
            if tmp is not None:  # nothing half-written stays behind
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            raise storage_error(exc, "write blob") from exc

    async def stat(self, sha256: str) -> BlobInfo | None:
        try:
            size = os.stat(self._file(sha256)).st_size
        except FileNotFoundError:
            return None
        return BlobInfo(sha256, size)

    async def read(self, sha256: str) -> bytes | None:
        try:
            return await anyio.to_thread.run_sync(self._path(sha256).read_bytes)
        except FileNotFoundError:
            return None

    async def open_range(
        self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK
    ) -> AsyncIterator[bytes]:
        try:
            fd = os.open(self._file(sha256), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise KeyError(sha256) from exc
        try:
            stop = os.fstat(fd).st_size if end is None else end
            position = start
            while position < stop:
                size = min(chunk_size, stop - position)
                chunk = _read_cached(fd, size, position)
                if chunk is None:  # not in the page cache: read from disk in a worker thread
                    chunk = await anyio.to_thread.run_sync(os.pread, fd, size, position)
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def delete(self, sha256: str) -> None:
        path = self._path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(path.parent)

    async def iter_blobs(self) -> AsyncIterator[StoredBlob]:
        now = time.time()
        for directory in sorted(p for p in self.root.iterdir() if p.is_dir()):
            for path in sorted(directory.iterdir()):
                if path.name.startswith(_TMP_PREFIX) or not is_sha256(path.name):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    yield StoredBlob(path.name, st.st_size, max(0.0, now - st.st_mtime))

    def remove_stale_temp_files(self, older_than_seconds: float) -> int:
        """Temp files left by a crash mid-write; returns how many were removed."""
        removed = 0
        now = time.time()
        for tmp in self.root.glob(f"*/{_TMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if now - tmp.stat().st_mtime >= older_than_seconds:
                    tmp.unlink()
                    removed += 1
        return removed

    async def close(self) -> None:
        return None


def storage_error(exc: OSError, doing: str) -> StorageUnavailable:
    """A full disk or quota is ``StorageFull`` (507); any other failure ``StorageUnavailable``."""
    error = StorageFull if exc.errno in _FULL else StorageUnavailable
    return error(f"could not {doing}: {exc.strerror or exc}")


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _read_cached(fd: int, size: int, position: int) -> bytes | None:
    """Bytes already in the page cache, read without blocking (RWF_NOWAIT); None if the read
    would have to wait for the disk. A hit's audio is usually cached: no thread hand-off."""
    if _NOWAIT is None:
        return None
    buffer = bytearray(size)
    try:
        count = os.preadv(fd, [buffer], position, _NOWAIT)
    except (BlockingIOError, OSError):
        return None
    if count < size and count != 0:
        return None  # partly cached: let the thread read the whole chunk
    # The buffer itself, not a copy: a transport takes any bytes-like object.
    return buffer if count == size else bytes(buffer[:count])  # type: ignore[return-value]


_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

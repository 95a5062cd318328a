"""Where a takes upload's files come from: a folder, a tar (gzipped or not) or a zip.

Each source lists its regular files by relative POSIX name and reads one at a time, at
most ``limit + 1`` bytes (so an oversized file is seen without reading it all). Reads
block: callers run them in a thread. A folder's files are only those inside it (a
symlink leading out is not followed); archive members are never extracted to disk.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Protocol

from audiocache.errors import InvalidArchive


class Source(Protocol):
    def names(self) -> list[str]: ...

    def read(self, name: str, limit: int) -> bytes: ...

    def close(self) -> None: ...


class FolderSource:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._names = sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and p.resolve().is_relative_to(self.root)
        )

    def names(self) -> list[str]:
        return self._names

    def read(self, name: str, limit: int) -> bytes:
        with (self.root / name).open("rb") as handle:
            return handle.read(limit + 1)

    def close(self) -> None:
        return None


class TarSource:
    def __init__(self, archive: IO[bytes]) -> None:
        try:
            self.tar = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - close()
            self.members = {clean_name(m.name): m for m in self.tar.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise InvalidArchive(f"Not a readable tar or zip archive: {exc}") from exc

    def names(self) -> list[str]:
        return sorted(self.members)

    def read(self, name: str, limit: int) -> bytes:
        try:
            handle = self.tar.extractfile(self.members[name])
            return handle.read(limit + 1) if handle is not None else b""
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise InvalidArchive(f"{name} cannot be read from the archive: {exc}") from exc

    def close(self) -> None:
        self.tar.close()


class ZipSource:
    def __init__(self, archive: IO[bytes]) -> None:
        try:
            self.zip = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidArchive(f"Not a readable zip archive: {exc}") from exc
        self.members = {clean_name(i.filename): i for i in self.zip.infolist() if not i.is_dir()}

    def names(self) -> list[str]:
        return sorted(self.members)

    def read(self, name: str, limit: int) -> bytes:
        try:
            with self.zip.open(self.members[name]) as handle:
                return handle.read(limit + 1)
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError) as exc:
            raise InvalidArchive(f"{name} cannot be read from the archive: {exc}") from exc

    def close(self) -> None:
        self.zip.close()


def open_archive(archive: IO[bytes]) -> Source:
    """A zip or a tar (plain or compressed), told apart by its content."""
    if zipfile.is_zipfile(archive):
        archive.seek(0)
        return ZipSource(archive)
    archive.seek(0)
    return TarSource(archive)


def clean_name(name: str) -> str:
    """``./takes/a.wav`` and ``takes/a.wav`` are the same member."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts)

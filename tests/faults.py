"""Real storage failures for tests: a tiny tmpfs that fills up, files made immutable.

Both need root (mount, chattr). Where that is impossible a test is skipped locally and
fails loudly under CI, as with a missing tool."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import IN_CI


def _unable(message: str) -> None:
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` (created), unmounted on exit."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        _unable(f"cannot mount a tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def fill(folder: Path) -> Path:
    """Write a file in ``folder`` until its file system is full; returns it (delete = free)."""
    filler = folder / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # The last few bytes that a smaller write still fits.
    with contextlib.suppress(OSError), open(filler, "ab", buffering=0) as out:
        while True:
            out.write(b"\0" * 512)
    return filler


@contextlib.contextmanager
def immutable(*paths: Path) -> Iterator[None]:
    """``chattr +i`` on existing paths (no write, even by root), undone on exit."""
    present = [str(p) for p in paths if os.path.exists(p)]
    done = subprocess.run(["chattr", "+i", *present], capture_output=True, text=True)
    if done.returncode != 0:
        _unable(f"cannot chattr +i (needs root and ext4/xfs/btrfs): {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *present], check=True)

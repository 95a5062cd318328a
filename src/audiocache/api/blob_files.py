"""Open file descriptors of blobs in the local folder, for the hot lane's ``sendfile``.

The lane has a memo'd response's bytes in memory, but copying 100 KB into a socket costs
more than the rest of the request together; ``os.sendfile`` from the blob's file skips the
copy (nginx's way). Blobs are content-addressed and immutable, so a descriptor, once open,
serves the right bytes for as long as it stays open (even after the file is deleted: the
memo stops offering the response at the next commit anyway). At most ``max_open`` stay
open, least recently used closed first.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path


class BlobFiles:
    def __init__(self, local_path: Callable[[str], Path | None], max_open: int) -> None:
        self._local_path = local_path
        self.max_open = max_open
        self._open: OrderedDict[str, int] = OrderedDict()

    def descriptor(self, sha256: str, size: int) -> int | None:
        """A descriptor of the blob's file, if it is a local file of ``size`` bytes."""
        fd = self._open.get(sha256)
        if fd is not None:
            self._open.move_to_end(sha256)
            return fd
        if self.max_open <= 0:
            return None
        path = self._local_path(sha256)
        if path is None:
            return None
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        if os.fstat(fd).st_size != size:
            os.close(fd)
            return None
        self._open[sha256] = fd
        while len(self._open) > self.max_open:
            _, oldest = self._open.popitem(last=False)
            os.close(oldest)
        return fd

    def close(self) -> None:
        while self._open:
            _, fd = self._open.popitem()
            os.close(fd)

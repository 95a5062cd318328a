"""What the hot path looked up, kept in process for as long as the database is unchanged.

A hit asks the same questions every time: is this key valid, which agent is this, which
entry answers this phrase, is its blob there. Each answer is kept here, tagged with the
database's **generation**: a number that changes whenever anything is committed to the
database, by this process or any other instance (``Database.generation``: SQLite's
``PRAGMA data_version``, PostgreSQL's WAL insert position). Every request reads the
generation first; a new one empties the memo before anything in it is used, so a revoked
key, a deleted entry or agent, a replaced take is seen by every instance at its next
request, exactly as without the memo. When the generation cannot be read the memo is
simply not used for that request.

An answer computed while the generation moved on is not kept (``put`` checks the
generation it started under). Both parts are bounded: ``max_items`` answers (past it the
memo starts over) and ``max_bytes`` of blob bytes (least recently used go first; a blob
over a sixteenth of it is never kept). Blob bytes are keyed by their sha256 and immutable,
so they need no generation; whether the blob is still in storage is checked per request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

Generation = Callable[[], Awaitable[object | None]]
GenerationNow = Callable[[], object | None]


class BlobBytes:
    """sha256 → the blob's bytes, least recently used dropped past ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.max_blob = max_bytes // 16
        self.size = 0
        self._blobs: OrderedDict[str, bytes] = OrderedDict()

    def get(self, sha256: str) -> bytes | None:
        data = self._blobs.get(sha256)
        if data is not None:
            self._blobs.move_to_end(sha256)
        return data

    def fits(self, size: int) -> bool:
        return 0 < size <= self.max_blob

    def put(self, sha256: str, data: bytes) -> None:
        if not self.fits(len(data)) or sha256 in self._blobs:
            return
        self._blobs[sha256] = data
        self.size += len(data)
        while self.size > self.max_bytes:
            _, dropped = self._blobs.popitem(last=False)
            self.size -= len(dropped)

    def drop(self, sha256: str) -> None:
        data = self._blobs.pop(sha256, None)
        if data is not None:
            self.size -= len(data)


class HotMemo:
    """``generation = await memo.begin()`` at the start of a request (None: don't use the
    memo for it), then ``get`` / ``put(key, value, generation)``."""

    def __init__(
        self,
        generation: Generation,
        max_items: int,
        max_bytes: int,
        generation_now: GenerationNow | None = None,
    ) -> None:
        self._generation = generation
        self._generation_now = generation_now
        self.max_items = max_items
        self.blobs = BlobBytes(max_bytes)
        self._seen: object | None = None
        self._answers: dict[Hashable, Any] = {}
        self.cleared = 0  # how often a new generation emptied it (tests, metrics)

    @property
    def enabled(self) -> bool:
        return self.max_items > 0

    async def begin(self) -> object | None:
        if self.max_items <= 0:
            return None
        try:
            generation = await self._generation()
        except Exception:  # the database is busy or gone: the request goes the long way
            return None
        return self._enter(generation)

    def begin_now(self) -> object | None:
        """``begin`` without waiting: None also when the generation cannot be read at once
        (PostgreSQL's takes a round trip), so the caller takes the asynchronous way."""
        if self.max_items <= 0 or self._generation_now is None:
            return None
        try:
            generation = self._generation_now()
        except Exception:
            return None
        return self._enter(generation)

    def _enter(self, generation: object | None) -> object | None:
        if generation is None:
            return None
        if generation != self._seen:
            if self._answers:
                self._answers.clear()
                self.cleared += 1
            self._seen = generation
        return generation

    def get(self, key: Hashable) -> Any:
        return self._answers.get(key)

    def put(self, key: Hashable, value: Any, generation: object) -> None:
        """Keep an answer worked out under ``generation``, unless that is already past."""
        if generation != self._seen:
            return
        if len(self._answers) >= self.max_items:
            self._answers.clear()
        self._answers[key] = value

    def drop(self, key: Hashable) -> None:
        self._answers.pop(key, None)

    def __len__(self) -> int:
        return len(self._answers)

"""Readiness: do the database and the blob store answer, each within a deadline?

A probe a load balancer calls every few seconds: one ``SELECT 1`` and one blob ``stat`` of
a hash no blob has (a miss is an answer; a refused connection or a timeout is not). A folder
store is asked for its root folder as well: a ``stat`` below a vanished or replaced folder
(an unmounted volume) is a miss too, and would pass for ready.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable

import anyio.to_thread
import sqlalchemy as sa

from audiocache.errors import NotReady
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.db import Database

log = logging.getLogger("audiocache.readiness")
_PROBE_SHA = "0" * 64


async def _answers(name: str, probe: Awaitable[object], timeout: float) -> str | None:
    """None if the part answered in time, else why not."""
    try:
        async with asyncio.timeout(timeout):
            await probe
    except TimeoutError:
        return f"{name}: no answer within {timeout:g} s"
    except Exception as exc:  # any failure is "not ready"; the reason goes in the answer
        return f"{name}: {getattr(exc, 'message', None) or type(exc).__name__}"
    return None


async def _select_one(db: Database) -> None:
    async with db.read() as conn:
        await conn.execute(sa.text("SELECT 1"))


def _list_root(root: str) -> None:
    """The root folder exists, is a folder and can be read (raises OSError otherwise)."""
    with os.scandir(root) as entries:
        next(entries, None)


async def _blob_probe(blobs: BlobStore) -> None:
    if isinstance(blobs, FilesystemBlobStore):
        await anyio.to_thread.run_sync(_list_root, str(blobs.root))
    await blobs.stat(_PROBE_SHA)


async def check_ready(db: Database, blobs: BlobStore, timeout: float) -> dict[str, str]:
    """``{"database": "ok", "blobs": "ok"}``, or ``NotReady`` naming what is down."""
    problems = [
        p
        for p in await asyncio.gather(
            _answers("database", _select_one(db), timeout),
            _answers("blob store", _blob_probe(blobs), timeout),
        )
        if p is not None
    ]
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
        raise NotReady("Not ready: " + "; ".join(problems))
    return {"database": "ok", "blobs": "ok"}

"""Readiness: do the database and the blob store answer, each within a deadline?

A probe a load balancer calls every few seconds: one ``SELECT 1`` and one blob ``stat`` of
a hash no blob has (a miss is an answer; a refused connection or a timeout is not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import sqlalchemy as sa

from audiocache.errors import NotReady
from audiocache.storage.blobs.base import BlobStore
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


async def check_ready(db: Database, blobs: BlobStore, timeout: float) -> dict[str, str]:
    """``{"database": "ok", "blobs": "ok"}``, or ``NotReady`` naming what is down."""
    problems = [
        p
        for p in await asyncio.gather(
            _answers("database", _select_one(db), timeout),
            _answers("blob store", blobs.stat(_PROBE_SHA), timeout),
        )
        if p is not None
    ]
    if problems:
        log.warning("not ready: %s", "; ".join(problems))
        raise NotReady("Not ready: " + "; ".join(problems))
    return {"database": "ok", "blobs": "ok"}

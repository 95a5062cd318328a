"""Hits never wait behind misses: not behind a full engine pool, not behind the write lock
that misses wait for when they store.

The fake engine has one slot and two places in the queue, and is held closed: misses fill
it and more are refused. Meanwhile a cached download and a runtime-path hit are answered,
and still are once those misses have synthesized and stand waiting on SQLite's write lock
(held by the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator

import pytest
from support import Api, assert_envelope

from audiocache.config import Settings
from audiocache.services import Services
from audiocache.tts.fake import FakeEngine

PROMPT = 5.0  # seconds: generous; a hit takes milliseconds, a blocked miss forever


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "cloud_concurrency": 1,
            "engine_queue_per_slot": 2,
            "engine_start_timeout_seconds": 60.0,
            "engine_synthesis_timeout_seconds": 60.0,
        }
    )


async def hits_answer(api: Api, entry_id: str) -> None:
    download = await asyncio.wait_for(
        api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers),
        PROMPT,
    )
    assert download.status_code == 200 and download.content.startswith(b"RIFF")
    hit = await asyncio.wait_for(api.speak("bot", "Cached already"), PROMPT)
    assert hit.status_code == 200 and hit.headers["x-audio-cache"] == "hit"
    assert hit.content == download.content


async def test_hits_are_answered_while_misses_fill_the_engine_and_wait_to_store(
    api: Api, fake_engine: FakeEngine, services: Services
) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Cached already")
    pool = services.engines.get("fake")
    fake_engine.gate = asyncio.Event()
    misses = [asyncio.create_task(api.speak("bot", f"new phrase {n}")) for n in range(3)]
    while not (fake_engine.active == 1 and pool.waiting == 2):  # type: ignore[union-attr]
        await asyncio.sleep(0.005)
    assert_envelope(await api.speak("bot", "one too many"), 503, "ENGINE_BUSY")

    await hits_answer(api, entry_id)  # the engine is saturated
    assert not any(m.done() for m in misses)

    async with held_write_lock(services):  # every store now waits for this lock
        fake_engine.gate.set()
        while len(fake_engine.calls) < 4 or fake_engine.active:  # all three synthesized
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        assert not any(m.done() for m in misses)  # ... and wait to store
        await hits_answer(api, entry_id)
    assert [m.status_code for m in await asyncio.gather(*misses)] == [200, 200, 200]


@contextlib.asynccontextmanager
async def held_write_lock(services: Services) -> AsyncIterator[None]:
    """Another client holding what every store needs: SQLite's write lock, or on PostgreSQL
    a lock on the entries table that lets reads through but no insert."""
    if services.db.is_sqlite:
        # a background writer (hit or audit flush) may hold the lock for a moment: wait it out
        writer = sqlite3.connect(services.settings.data_dir / "audiocache.db", timeout=10)
        writer.isolation_level = None
        writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            writer.rollback()
            writer.close()
        return
    import asyncpg

    dsn = services.settings.database_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute("LOCK TABLE audio_cache_entries IN SHARE ROW EXCLUSIVE MODE")
        try:
            yield
        finally:
            await transaction.rollback()
    finally:
        await conn.close()

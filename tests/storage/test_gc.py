"""storage/gc.py: the pending-deletes sweep, check and collect, and the crash windows around
a write (blob → row commit → blob still there) and a delete (row + queue → unlink)."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import sine_wav

from audiocache.config import Settings
from audiocache.models import Agent
from audiocache.services import Services, build_services
from audiocache.storage import gc
from audiocache.storage.agents_repo import AgentRepository
from audiocache.storage.blobs.base import BlobStore, sha256_hex
from audiocache.storage.blobs.fs import FilesystemBlobStore
from audiocache.storage.blobs.s3 import S3BlobStore
from audiocache.storage.db import Database
from audiocache.storage.entries_repo import EntryRepository
from audiocache.storage.pending import queue_blob_deletes
from audiocache.storage.tables import pending_blob_deletes
from audiocache.tts.fake import FakeEngine

HOUR = 3600.0
WAV_A, WAV_B, WAV_C = (sine_wav(0.1, freq=f) for f in (300.0, 500.0, 700.0))


class Killed(Exception):
    """Stands in for kill -9 at the point where it is raised."""


# The gc's logic sits on the database and the blob store: both SQLite and PostgreSQL, both
# the folder and S3 (the memory store is covered by the blob conformance suite).
@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}"
    return str(request.getfixturevalue("postgres_database"))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.migrate()
    await AgentRepository(database).create(
        public_id="bot", account_id="acme", name="Bot", greeting="hi", language_code="en-US"
    )
    yield database
    await database.close()


@pytest.fixture(params=["fs", "s3"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "fs":
        return FilesystemBlobStore(tmp_path / "blobs")
    return S3BlobStore(request.getfixturevalue("s3_location"))


@pytest.fixture
def fs_blobs(tmp_path: Path) -> FilesystemBlobStore:
    return FilesystemBlobStore(tmp_path / "blobs")


_counter = iter(range(10**9))


async def add_entry(db: Database, sha: str, size: int = 100) -> int:
    n = next(_counter)
    entry, created = await EntryRepository(db).insert(
        {
            "agent_id": "bot",
            "cache_key": f"{n:064x}",
            "transcript": f"phrase {n}",
            "provider": "fake",
            "provider_voice_id": "alpha",
            "blob_sha256": sha,
            "size_bytes": size,
            "duration": 0.1,
        }
    )
    assert created
    return entry.id


async def queue(db: Database, *shas: str) -> None:
    async with db.write() as conn:
        await queue_blob_deletes(conn, shas)


async def queued(db: Database) -> set[str]:
    async with db.read() as conn:
        return set((await conn.execute(sa.select(pending_blob_deletes.c.sha256))).scalars())


def age(store: FilesystemBlobStore, sha: str, seconds: float) -> None:
    path = store.local_path(sha)
    assert path is not None
    then = time.time() - seconds
    os.utime(path, (then, then))


def make_temp_file(store: FilesystemBlobStore, name: str, seconds_old: float) -> Path:
    folder = store.root / "ab"
    folder.mkdir(exist_ok=True)
    path = folder / f".tmp-{'ab' * 32}-{name}"
    path.write_bytes(b"partial")
    then = time.time() - seconds_old
    os.utime(path, (then, then))
    return path


# -- sweep_pending --------------------------------------------------------------------------


async def test_sweep_unlinks_queued_unreferenced_blob_and_keeps_referenced(
    db: Database, blobs: BlobStore
) -> None:
    gone = (await blobs.put(WAV_A)).sha256
    kept = (await blobs.put(WAV_B)).sha256
    await add_entry(db, kept)
    await queue(db, gone, kept)

    assert await gc.sweep_pending(db, blobs) == 1

    assert await blobs.stat(gone) is None
    assert await blobs.read(kept) == WAV_B
    assert await queued(db) == set()


async def test_sweep_only_touches_the_given_hashes(db: Database, blobs: BlobStore) -> None:
    a = (await blobs.put(WAV_A)).sha256
    b = (await blobs.put(WAV_B)).sha256
    await queue(db, a, b)

    assert await gc.sweep_pending(db, blobs, only=[a]) == 1

    assert await blobs.stat(a) is None and await blobs.stat(b) is not None
    assert await queued(db) == {b}


async def test_sweep_of_a_queued_hash_whose_blob_is_already_gone_clears_it(
    db: Database, blobs: BlobStore
) -> None:
    await queue(db, sha256_hex(b"never stored"))
    assert await gc.sweep_pending(db, blobs) == 1  # unlinking nothing is a no-op
    assert await queued(db) == set()


# -- check ----------------------------------------------------------------------------------


async def test_check_finds_rows_without_blobs_and_blobs_without_rows(
    db: Database, blobs: BlobStore
) -> None:
    referenced = (await blobs.put(WAV_A)).sha256
    orphan = (await blobs.put(WAV_B)).sha256
    ok_id = await add_entry(db, referenced)
    lost_id = await add_entry(db, sha256_hex(b"lost audio"))
    await queue(db, sha256_hex(b"something"))

    report = await gc.check(db, blobs, grace_seconds=0)

    assert report.entries == 2 and report.blobs == 2 and report.pending == 1
    assert report.rows_without_blob == [lost_id]
    assert report.blobs_without_row == [orphan]
    assert ok_id not in report.rows_without_blob
    assert not report.healthy
    # A fresh orphan may belong to a write in flight: inside the grace it is not reported,
    # while a row without its blob is reported whatever the grace.
    young = await gc.check(db, blobs, grace_seconds=HOUR)
    assert young.blobs_without_row == [] and young.rows_without_blob == [lost_id]


async def test_check_grace_is_measured_by_blob_age(
    db: Database, fs_blobs: FilesystemBlobStore
) -> None:
    fresh = (await fs_blobs.put(WAV_A)).sha256
    old = (await fs_blobs.put(WAV_B)).sha256
    age(fs_blobs, old, 2 * HOUR)

    report = await gc.check(db, fs_blobs, grace_seconds=HOUR)

    assert report.blobs_without_row == [old]
    assert fresh not in report.blobs_without_row and report.blobs == 2


async def test_check_of_a_consistent_store_is_healthy(db: Database, blobs: BlobStore) -> None:
    sha = (await blobs.put(WAV_A)).sha256
    await add_entry(db, sha)
    await add_entry(db, sha)  # two rows may share one blob
    report = await gc.check(db, blobs)
    assert report.healthy and report.entries == 2 and report.blobs == 1


# -- collect --------------------------------------------------------------------------------


async def test_collect_removes_old_orphans_and_stale_temp_files_but_never_rows(
    db: Database, fs_blobs: FilesystemBlobStore
) -> None:
    referenced = (await fs_blobs.put(WAV_A)).sha256
    old_orphan = (await fs_blobs.put(WAV_B)).sha256
    young_orphan = (await fs_blobs.put(WAV_C)).sha256
    age(fs_blobs, referenced, 2 * HOUR)
    age(fs_blobs, old_orphan, 2 * HOUR)
    stale_tmp = make_temp_file(fs_blobs, "stale", 2 * HOUR)
    fresh_tmp = make_temp_file(fs_blobs, "fresh", 0)
    await add_entry(db, referenced)
    lost_id = await add_entry(db, sha256_hex(b"lost audio"))

    report = await gc.collect(db, fs_blobs, grace_seconds=HOUR)

    assert await fs_blobs.stat(old_orphan) is None
    assert await fs_blobs.read(referenced) == WAV_A
    assert await fs_blobs.read(young_orphan) == WAV_C
    assert not stale_tmp.exists() and fresh_tmp.exists()
    assert report.collected == 1 and report.temp_files_removed == 1
    assert await EntryRepository(db).count() == 2  # the row without a blob stays, reported
    assert report.rows_without_blob == [lost_id]
    assert report.blobs_without_row == [] and report.pending == 0


async def test_collect_finishes_the_queue_first(db: Database, blobs: BlobStore) -> None:
    sha = (await blobs.put(WAV_A)).sha256
    await queue(db, sha)
    report = await gc.collect(db, blobs, grace_seconds=HOUR)
    assert report.swept == 1 and report.pending == 0 and report.healthy
    assert await blobs.stat(sha) is None


# -- crash windows, through the real services -----------------------------------------------


def make_services(settings: Settings) -> Services:
    # No take history here: these tests follow the blob a replace releases (history keeps
    # it as a take; tests/storage/test_takes.py covers that).
    settings = settings.model_copy(update={"take_history_limit": 0})
    return build_services(settings, engines=[FakeEngine()])


@pytest.fixture
async def svc(settings: Settings) -> AsyncIterator[Services]:
    services = make_services(settings)
    await services.start()
    yield services
    await services.stop()


async def make_agent(services: Services) -> Agent:
    agent = await services.agents.create(
        "acme", name="Bot", greeting="hi", language_code="en-US", agent_id="bot"
    )
    return await services.agents.set_policy(agent, "always", None, None)


async def stored(services: Services, agent: Agent, text: str) -> Any:
    result = await services.cache.speak(agent, text, voice="fake:alpha")
    assert result.entry is not None
    return result.entry


async def test_crash_after_delete_commit_before_unlink_is_swept_on_start(
    settings: Settings, svc: Services
) -> None:
    agent = await make_agent(svc)
    entry = await stored(svc, agent, "Goodbye")
    # The repository's delete is the committed half (row gone + hash queued, one
    # transaction); the crash comes before CacheService sweeps.
    assert await svc.entries.delete(agent.id, [entry.id]) == [entry.id]
    assert await svc.blobs.stat(entry.blob_sha256) is not None
    assert await queued(svc.db) == {entry.blob_sha256}

    restarted = make_services(settings)
    await restarted.start()
    try:
        assert await restarted.blobs.stat(entry.blob_sha256) is None
        assert await queued(restarted.db) == set()
        assert (await gc.check(restarted.db, restarted.blobs)).healthy
    finally:
        await restarted.stop()


async def test_crash_after_replace_commit_before_sweep_is_swept_on_start(
    settings: Settings, svc: Services
) -> None:
    agent = await make_agent(svc)
    entry = await stored(svc, agent, "Hello")

    async def killed_sweep(_shas: list[str] | None) -> None:
        raise Killed

    svc.curation.writer.sweep = killed_sweep  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await svc.curation.replace_audio(entry, WAV_A, "a.wav")
    assert await svc.blobs.stat(entry.blob_sha256) is not None  # old blob, now unreferenced

    restarted = make_services(settings)
    await restarted.start()
    try:
        assert await restarted.blobs.stat(entry.blob_sha256) is None
        now = await restarted.curation.get_entry(agent.id, entry.id)
        assert await restarted.blobs.read(now.blob_sha256) == WAV_A
        assert (await gc.check(restarted.db, restarted.blobs)).healthy
    finally:
        await restarted.stop()


async def test_crash_after_blob_write_before_row_commit_leaves_an_orphan_for_gc(
    svc: Services,
) -> None:
    agent = await make_agent(svc)
    real_insert = svc.entries.insert

    async def killed_insert(values: Any, *args: Any, **kwargs: Any) -> Any:
        raise Killed

    svc.entries.insert = killed_insert  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await svc.cache.speak(agent, "Never committed", voice="fake:alpha")
    svc.entries.insert = real_insert  # type: ignore[method-assign]

    report = await gc.check(svc.db, svc.blobs, grace_seconds=0)
    assert report.entries == 0 and report.rows_without_blob == []
    [orphan] = report.blobs_without_row

    kept = await gc.collect(svc.db, svc.blobs, grace_seconds=HOUR)
    assert kept.collected == 0 and await svc.blobs.stat(orphan) is not None
    collected = await gc.collect(svc.db, svc.blobs, grace_seconds=0)
    assert collected.collected == 1 and collected.healthy
    assert await svc.blobs.stat(orphan) is None


async def _sweep_out_from_under(services: Services, agent: Agent, holder_id: int) -> None:
    """Delete the only other entry holding the blob and sweep it: the concurrent sweeper."""
    assert await services.entries.delete(agent.id, [holder_id]) == [holder_id]
    assert await gc.sweep_pending(services.db, services.blobs) == 1


async def test_replace_that_reuses_a_hash_a_sweep_just_removed_restores_the_blob(
    svc: Services,
) -> None:
    agent = await make_agent(svc)
    holder = await svc.curation.replace_audio(await stored(svc, agent, "One"), WAV_A, "a.wav")
    target = await stored(svc, agent, "Two")
    shared = sha256_hex(WAV_A)
    real_update = svc.entries.update_audio

    async def update_after_sweep(entry: Any, values: Any, *args: Any, **kwargs: Any) -> Any:
        # The writer's blob put found WAV_A present (a no-op); now the sweeper takes it.
        await _sweep_out_from_under(svc, agent, holder.id)
        assert await svc.blobs.stat(shared) is None
        return await real_update(entry, values, *args, **kwargs)

    svc.entries.update_audio = update_after_sweep  # type: ignore[method-assign]
    updated = await svc.curation.replace_audio(target, WAV_A, "again.wav")

    assert updated.blob_sha256 == shared
    assert await svc.blobs.read(shared) == WAV_A
    report = await gc.check(svc.db, svc.blobs)
    assert report.healthy and report.entries == 1


async def test_store_that_reuses_a_hash_a_sweep_just_removed_restores_the_blob(
    svc: Services,
) -> None:
    agent = await make_agent(svc)
    first = await stored(svc, agent, "Same words")
    # Another agent stores the same phrase (same audio, same blob) while the sweeper takes
    # the blob away from under it: the first agent's entry was its only other holder.
    other = await svc.agents.create(
        "acme", name="Other", greeting="hi", language_code="en-US", agent_id="other"
    )
    other = await svc.agents.set_policy(other, "always", None, None)
    real_insert = svc.entries.insert

    async def insert_after_sweep(values: Any, *args: Any, **kwargs: Any) -> Any:
        await _sweep_out_from_under(svc, agent, first.id)
        assert await svc.blobs.stat(first.blob_sha256) is None
        return await real_insert(values, *args, **kwargs)

    svc.entries.insert = insert_after_sweep  # type: ignore[method-assign]
    result = await svc.cache.speak(other, "Same words", voice="fake:alpha")

    assert result.entry is not None and result.entry.blob_sha256 == first.blob_sha256
    assert await svc.blobs.read(first.blob_sha256) == result.audio
    report = await gc.check(svc.db, svc.blobs)
    assert report.healthy and report.entries == 1


async def test_kill_right_after_a_row_commit_that_reuses_a_swept_hash_leaves_no_row_without_blob(
    svc: Services,
) -> None:
    """The writer's commit lands after the sweep unlinked the shared blob; the process dies
    before anything after the commit runs. The row must not be left pointing at nothing."""
    agent = await make_agent(svc)
    holder = await svc.curation.replace_audio(await stored(svc, agent, "One"), WAV_A, "a.wav")
    target = await stored(svc, agent, "Two")
    real_update = svc.entries.update_audio

    async def update_then_die(entry: Any, values: Any, *args: Any, **kwargs: Any) -> Any:
        await _sweep_out_from_under(svc, agent, holder.id)
        await real_update(entry, values, *args, **kwargs)
        raise Killed

    svc.entries.update_audio = update_then_die  # type: ignore[method-assign]
    with pytest.raises(Killed):
        await svc.curation.replace_audio(target, WAV_A, "again.wav")

    report = await gc.check(svc.db, svc.blobs)
    assert report.rows_without_blob == [], "a committed row points at a swept blob"


async def test_a_sweep_checks_its_queue_in_batches_not_blob_by_blob(
    db: Database, fs_blobs: FilesystemBlobStore
) -> None:
    # 250 queued blobs, every third still referenced: 3 write transactions of 100 at most,
    # not 250 (each one an fsync on SQLite: seconds for a 500-entry delete).
    shas = [(await fs_blobs.put(sine_wav(0.01, freq=200.0 + n))).sha256 for n in range(250)]
    kept = shas[::3]
    for sha in kept:
        await add_entry(db, sha)
    await queue(db, *shas)
    began: list[object] = []

    def count(conn: object) -> None:
        began.append(conn)

    sa.event.listen(db.write_engine.sync_engine, "begin", count)
    try:
        removed = await gc.sweep_pending(db, fs_blobs, batch=100)
    finally:
        sa.event.remove(db.write_engine.sync_engine, "begin", count)
    assert removed == 250 - len(kept)
    reads = 1 if db.write_engine is db.engine else 0  # PostgreSQL's one engine: its read too
    assert len(began) == 3 + reads
    assert await queued(db) == set()
    assert [sha for sha in shas if await fs_blobs.stat(sha) is not None] == kept

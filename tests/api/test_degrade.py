"""Degrade, don't fail: when storage refuses a write (a full blob folder on a real tmpfs, a
read-only or locked database), callers still get their audio; only writes fail."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from audio_cache_helpers import AGENT, BASE, replace_details, replace_file
from faults import fill, immutable, tmpfs
from support import Api, assert_envelope, sine_wav

from audiocache.audio.formats import parse_output_format
from audiocache.audio.transcode import transcode
from audiocache.audio.wav import parse_wav
from audiocache.config import Settings


@pytest.fixture
def blob_root(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "blobs", "2m") as root:
        yield root


@pytest.fixture
def settings(tmp_path: Path, blob_root: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        blob_dir=blob_root,
        hit_flush_seconds=0.1,
        key_cache_seconds=0,
        database_busy_timeout_seconds=0.3,
    )


def temp_files(root: Path) -> list[Path]:
    return list(root.rglob(".tmp-*"))


def assert_unstored_miss(r, media_type: str = "audio/wav") -> bytes:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-audio-cache"] == "miss"
    assert "x-audio-cache-entry-id" not in r.headers
    assert r.headers["content-type"] == media_type
    return r.content


async def test_full_blob_store_still_serves_and_only_writes_fail(
    api: Api, agent: str, blob_root: Path
) -> None:
    seeded = await api.seed_entry(agent, "Thanks for calling")
    stored_audio = (await api.client.get(f"{BASE}/{seeded}/file", headers=api.headers)).content
    degraded = api.services.cache.degraded
    filler = fill(blob_root)

    # A new phrase: synthesized, answered, not stored.
    audio = assert_unstored_miss(await api.speak(agent, "A brand new phrase"))
    assert parse_wav(audio).duration > 0
    assert degraded.unstored_phrases == 1 and degraded.by_error["STORAGE_FULL"] == 1
    assert (await api.entries(agent))["totalCount"] == 1
    assert temp_files(blob_root) == []

    # What is stored keeps being served: runtime hit, download.
    hit = await api.speak(agent, "Thanks for calling")
    assert hit.headers["x-audio-cache"] == "hit" and hit.content == stored_audio
    assert hit.headers["x-audio-cache-entry-id"] == seeded
    r = await api.client.get(f"{BASE}/{seeded}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == stored_audio

    # A converted download streams the conversion without caching it.
    ulaw = transcode(stored_audio, parse_output_format("ulaw_8000", None))
    for attempt in (1, 2):
        r = await api.client.get(
            f"{BASE}/{seeded}/file", params={"output_format": "ulaw_8000"}, headers=api.headers
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "audio/basic" and r.content == ulaw
        assert degraded.unstored_variants == attempt
    ranged = await api.client.get(
        f"{BASE}/{seeded}/file",
        params={"output_format": "ulaw_8000"},
        headers={**api.headers, "Range": "bytes=0-99"},
    )
    assert ranged.status_code == 206 and ranged.content == ulaw[:100]

    # A converted miss on the runtime path, too.
    r = await api.speak(agent, "Another new phrase", output_format="ulaw_8000")
    assert assert_unstored_miss(r, "audio/basic")

    # Requests whose point is to write fail, in the envelope, with their own code.
    assert_envelope(await replace_file(api, seeded, sine_wav(freq=311.0)), 507, "STORAGE_FULL")
    r = await replace_details(api, seeded, text="A studio take", wav=sine_wav(freq=622.0))
    assert_envelope(r, 507, "STORAGE_FULL")
    r = await api.client.post(
        f"{BASE}/warm", json={"phrases": [{"text": "Warm me"}]}, headers=api.headers
    )
    assert_envelope(r, 507, "STORAGE_FULL")
    r = await api.client.post(f"{BASE}/{seeded}/regenerate", headers=api.headers)
    if r.status_code != 200:  # the same audio again needs no new blob: only then it may pass
        assert_envelope(r, 507, "STORAGE_FULL")
    assert temp_files(blob_root) == []
    listed = await api.entries(agent)
    assert listed["totalCount"] == 1 and listed["entries"][0]["transcript"] == "Thanks for calling"

    # Space again: the same phrase is stored, no restart needed.
    filler.unlink()
    r = await api.speak(agent, "A brand new phrase")
    assert r.status_code == 200 and r.headers.get("x-audio-cache-entry-id")
    assert (await api.entries(agent))["totalCount"] == 2
    before = degraded.unstored_variants
    r = await api.client.get(
        f"{BASE}/{seeded}/file", params={"output_format": "ulaw_8000"}, headers=api.headers
    )
    assert r.status_code == 200 and r.content == ulaw and degraded.unstored_variants == before


async def test_full_blob_store_streamed_miss_is_served_unstored(
    api: Api, agent: str, blob_root: Path
) -> None:
    fill(blob_root)
    r = await api.speak(agent, "Streaming into a full disk", voice="espeak:en-us", stream=True)
    assert r.status_code == 200 and r.headers["x-audio-cache"] == "miss"
    assert len(r.content) > 1000
    assert api.services.cache.degraded.unstored_phrases == 1
    assert (await api.entries(agent))["totalCount"] == 0
    assert temp_files(blob_root) == []


async def test_read_only_database_still_answers_the_runtime_path(api: Api, tmp_path: Path) -> None:
    # Default admission: even counting the request is a write that the database refuses.
    await api.create_agent(AGENT, admission="default")
    seeded_by_warm = await api.client.post(
        f"{BASE}/warm", json={"phrases": [{"text": "Warm hello"}]}, headers=api.headers
    )
    assert seeded_by_warm.status_code == 200, seeded_by_warm.text
    data = tmp_path / "data"
    with immutable(data / "audiocache.db", data / "audiocache.db-wal"):
        audio = assert_unstored_miss(await api.speak(AGENT, "Said while read-only"))
        assert parse_wav(audio).duration > 0
        assert api.services.cache.degraded.unstored_phrases == 1
        hit = await api.speak(AGENT, "Warm hello")
        assert hit.status_code == 200 and hit.headers["x-audio-cache"] == "hit"
        entry_id = hit.headers["x-audio-cache-entry-id"]
        r = await replace_file(api, entry_id, sine_wav(freq=415.0))
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
        r = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
        r = await api.client.delete(f"{BASE}/{entry_id}/pin", headers=api.headers)
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
    listed = await api.entries(AGENT)
    assert [e["transcript"] for e in listed["entries"]] == ["Warm hello"]


async def test_database_locked_past_its_timeout_still_answers(
    api: Api, agent: str, tmp_path: Path
) -> None:
    holder = sqlite3.connect(tmp_path / "data" / "audiocache.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        assert_unstored_miss(await api.speak(agent, "Said while locked"))
        assert api.services.cache.degraded.unstored_phrases == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    r = await api.speak(agent, "Said while locked")
    assert r.status_code == 200 and r.headers.get("x-audio-cache-entry-id")

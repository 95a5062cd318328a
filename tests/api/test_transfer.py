"""Export, import and takes uploads through the API, over both backends; the imports go
into a fresh instance on the other backend pair (``transfer_helpers.py``)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from support import Api, assert_envelope, sine_wav, tar_of
from transfer_helpers import (
    audio,
    identity,
    instance,
    listing,
    manifest_of,
    members,
    other_backend_settings,
)

from audiocache.config import Settings
from audiocache.storage.takes_repo import TakeRepository

AGENT = "source"
TARGET = "restored"


async def seed(api: Api) -> list[str]:
    """Entries with every flag and a hit count: pinned, replaced by an upload, regenerated."""
    await api.create_agent(AGENT)
    texts = ("Hello there", "Goodbye now", "Please hold", "One moment")
    ids = [await api.seed_entry(AGENT, text) for text in texts]
    await api.seed_entry(AGENT, "Tuned phrase", config={"speed": 1.5})
    base = f"/v1/agents/{AGENT}/audio-cache"
    r = await api.client.put(f"{base}/{ids[0]}/pin", headers=api.headers)
    assert r.status_code == 200
    r = await api.client.patch(
        f"{base}/{ids[1]}/file",
        content=sine_wav(0.3),
        headers={**api.headers, "X-Filename": "studio.wav"},
    )
    assert r.status_code == 204, r.text
    r = await api.client.post(f"{base}/{ids[2]}/regenerate", headers=api.headers)
    assert r.status_code == 200, r.text
    for _ in range(3):
        await api.speak(AGENT, "One moment")
    r = await api.client.post(
        f"{base}/warm", json={"phrases": [{"text": "Warmed up"}], "pin": False}, headers=api.headers
    )
    assert r.status_code == 200, r.text
    return ids


async def export(api: Api, agent: str = AGENT) -> bytes:
    r = await api.client.get(f"/v1/agents/{agent}/audio-cache/export", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.content


async def import_(api: Api, archive: bytes, agent: str = TARGET) -> dict:
    r = await api.client.post(
        f"/v1/agents/{agent}/audio-cache/import",
        content=archive,
        headers={**api.headers, "Content-Type": "application/x-tar"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_export_streams_every_entry_with_its_audio_and_hashes(api: Api) -> None:
    await seed(api)
    r = await api.client.get(f"/v1/agents/{AGENT}/audio-cache/export", headers=api.headers)
    assert r.headers["content-type"] == "application/x-tar"
    assert 'filename="source.audiocache.tar"' in r.headers["content-disposition"]
    files = members(r.content)
    manifest = json.loads(files.pop("manifest.json"))
    assert (manifest["format"], manifest["version"]) == ("audiocache-export", 1)
    assert manifest["agent"]["agentId"] == AGENT
    by_text = {e["transcript"]: e for e in manifest["entries"]}
    assert by_text["Hello there"]["flags"]["pinned"] is True
    assert by_text["Goodbye now"]["flags"]["imported"] is True
    assert by_text["Goodbye now"]["audioFilename"] == "studio.wav"
    assert by_text["Please hold"]["flags"]["regenerated"] is True
    assert by_text["Tuned phrase"]["config"] == {"speed": 1.5}
    assert by_text["One moment"]["hitCount"] == 3  # unflushed hits included
    assert by_text["Warmed up"]["flags"] == {
        "imported": False,
        "regenerated": False,
        "pinned": False,
        "warmed": True,
    }
    assert set(files) == {e["file"] for e in manifest["entries"]}
    for record in manifest["entries"]:
        data = files[record["file"]]
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
        assert data == await audio(api, AGENT, record["id"])


async def test_export_needs_read_and_an_agent_of_the_account(api: Api) -> None:
    await api.create_agent(AGENT)
    url = f"/v1/agents/{AGENT}/audio-cache/export"
    assert_envelope(await api.client.get(url), 401, "UNAUTHORIZED")
    no_read = await api.new_key(["agents:read"])
    assert_envelope(await api.client.get(url, headers={"X-API-KEY": no_read}), 403, "FORBIDDEN")
    other = await api.new_key(["audio_cache:read"], account="other")
    assert_envelope(await api.client.get(url, headers={"X-API-KEY": other}), 404, "NOT_FOUND")


@pytest.fixture
def other_backend(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Settings:
    """Settings of a fresh instance on the other backend; a sync fixture, so the real
    servers it may start (PostgreSQL, radosgw) start outside the test's event loop."""
    return other_backend_settings(request, backend, tmp_path / "fresh")


async def test_round_trip_into_a_fresh_instance_on_the_other_backend(
    api: Api, other_backend: Settings
) -> None:
    await seed(api)
    archive = await export(api)
    before = await listing(api, AGENT)
    settings = other_backend
    async with instance(settings) as fresh:
        await fresh.create_agent(TARGET)
        report = await import_(fresh, archive)
        assert report == {
            "total": 6,
            "created": 6,
            "replaced": 0,
            "unchanged": 0,
            "failed": 0,
            "failures": [],
            "missingAudio": 0,
        }
        after = await listing(fresh, TARGET)
        assert [identity(e) for e in after] == [identity(e) for e in before]
        for old, new in zip(before, after, strict=True):
            assert await audio(fresh, TARGET, new["id"]) == await audio(api, AGENT, old["id"])
        flags = {
            e["transcript"]: e["flags"] for e in manifest_of(await export(fresh, TARGET))["entries"]
        }
        assert flags == {e["transcript"]: e["flags"] for e in manifest_of(archive)["entries"]}
        again = await import_(fresh, archive)
        assert (again["created"], again["replaced"], again["unchanged"]) == (0, 0, 6)
        assert [identity(e) for e in await listing(fresh, TARGET)] == [identity(e) for e in after]
        # the imported entries are what the runtime path serves: same keys for the new agent
        for text, extra in (("Hello there", {}), ("Tuned phrase", {"config": {"speed": 1.5}})):
            r = await fresh.speak(TARGET, text, **extra)
            assert r.headers["x-audio-cache"] == "hit", text


async def test_import_replaces_other_audio_and_keeps_the_old_take(api: Api) -> None:
    await seed(api)
    archive = await export(api)
    await api.create_agent(TARGET)
    target_id = await api.seed_entry(TARGET, "Hello there")  # the same phrase…
    r = await api.client.patch(  # … with other audio
        f"/v1/agents/{TARGET}/audio-cache/{target_id}/file",
        content=sine_wav(0.2, freq=880.0),
        headers=api.headers,
    )
    assert r.status_code == 204
    old_audio = await audio(api, TARGET, target_id)
    report = await import_(api, archive)
    assert (report["created"], report["replaced"], report["unchanged"]) == (5, 1, 0)
    assert (await audio(api, TARGET, target_id)) != old_audio
    target = await api.services.agents.owned("acme", TARGET)
    takes = await TakeRepository(api.services.db).of_entry(target.id, int(target_id))
    assert takes[0].reason == "replace"  # the replaced take is kept in the history
    assert await api.services.blobs.read(takes[0].blob_sha256) == old_audio


def tamper(archive: bytes, name: str) -> bytes:
    files = members(archive)
    data = bytearray(files[name])
    data[-1] ^= 0xFF
    files[name] = bytes(data)
    return tar_of(files)


async def test_a_damaged_archive_is_refused_whole(api: Api) -> None:
    await seed(api)
    archive = await export(api)
    await api.create_agent(TARGET)
    url = f"/v1/agents/{TARGET}/audio-cache/import"
    first_file = manifest_of(archive)["entries"][-1]["file"]  # the last file: the rest is fine
    cases = {
        "tampered": tamper(archive, first_file),
        "truncated": archive[: len(archive) // 2],
        "not a tar": b"RIFF" + b"\0" * 4000,
        "no manifest": tar_of({k: v for k, v in members(archive).items() if k != "manifest.json"}),
        "other version": tar_of(
            {
                **members(archive),
                "manifest.json": json.dumps({**manifest_of(archive), "version": 99}).encode(),
            }
        ),
        "missing file": tar_of({k: v for k, v in members(archive).items() if k != first_file}),
    }
    for case, body in cases.items():
        r = await api.client.post(url, content=body, headers=api.headers)
        error = assert_envelope(r, 400, "INVALID_ARCHIVE")
        assert error["error_message"], case
    assert (await api.entries(TARGET))["totalCount"] == 0  # nothing half-written
    tampered = await api.client.post(url, content=cases["tampered"], headers=api.headers)
    assert "sha256" in tampered.json()["error_message"]
    assert_envelope(await api.client.post(url, content=b"", headers=api.headers), 400)


async def test_import_is_bounded_and_needs_write(api: Api, services) -> None:  # type: ignore[no-untyped-def]
    await api.create_agent(TARGET)
    url = f"/v1/agents/{TARGET}/audio-cache/import"
    read_only = await api.new_key(["audio_cache:read"])
    r = await api.client.post(url, content=b"x", headers={"X-API-KEY": read_only})
    assert_envelope(r, 403, "FORBIDDEN")
    services.settings.transfer_max_archive_bytes = 1000
    r = await api.client.post(url, content=b"x" * 5000, headers=api.headers)
    assert_envelope(r, 400, "PAYLOAD_TOO_LARGE")


def gzip_tar(archive: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members(archive).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def test_a_gzipped_archive_imports_too(api: Api) -> None:
    await seed(api)
    await api.create_agent(TARGET)
    report = await import_(api, gzip_tar(await export(api)))
    assert report["created"] == 6

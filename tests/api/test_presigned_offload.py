"""AUDIOCACHE_OFFLOAD=s3-presigned against the real radosgw (PostgreSQL + S3): an
authorized download is a 307 to a presigned GET of its object, and the client gets the
bytes from S3; everything else (401/403/404, 304, 416, HEAD, the runtime path's POST) is
still audiocache's. The URL is signed per response: a memo'd download never hands out a
stale one. The setting is refused with a folder blob store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from audio_cache_helpers import AGENT
from pydantic import ValidationError
from support import Api, assert_envelope, audiocache_cli
from test_hot_path import hot_path_of

from audiocache.api.audio_response import content_disposition
from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import Services, build_services
from audiocache.storage.blobs.memory import MemoryBlobStore
from audiocache.storage.blobs.s3 import S3Location


@pytest.fixture
def presign_seconds() -> int:
    return 60


@pytest.fixture
def database() -> str:
    return "postgres"


@pytest.fixture
def settings(
    tmp_path: Path,
    database: str,
    s3_location: S3Location,
    presign_seconds: int,
    request: pytest.FixtureRequest,
) -> Settings:
    # SQLite + S3 where the memo must stay put: PostgreSQL's generation (its WAL position)
    # also moves with the rest of the cluster's work (the next test's database being made)
    postgres = request.getfixturevalue("postgres_database") if database == "postgres" else None
    return Settings(
        data_dir=tmp_path / "data",
        hit_flush_seconds=0.1,
        key_cache_seconds=0,
        database_url=postgres,
        offload="s3-presigned",
        offload_presign_seconds=presign_seconds,
        blob_url=f"s3://{s3_location.bucket}/{s3_location.prefix}",
        s3_endpoint_url=s3_location.endpoint,
        s3_region=s3_location.region,
        s3_access_key_id=s3_location.access_key_id,
        s3_secret_access_key=s3_location.secret_access_key,  # type: ignore[arg-type]
    )


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app at http://test; any other host (radosgw) over the network, so that
    ``follow_redirects`` goes from audiocache to S3 as a client's would."""
    app = create_app(services.settings, services)
    async with LifespanManager(app) as manager:
        mounts = {"http://test": httpx.ASGITransport(app=manager.app)}
        async with httpx.AsyncClient(mounts=mounts, base_url="http://test", timeout=20) as c:
            c.app = app  # type: ignore[attr-defined]
            yield c


@pytest.fixture
async def stored(api: Api) -> tuple[str, bytes]:
    """An entry's download URL and the bytes the runtime path answered its miss with."""
    agent = await api.create_agent(AGENT)
    miss = await api.speak(agent, "Thanks for calling")
    assert miss.status_code == 200 and miss.headers["x-audio-cache"] == "miss"
    entry_id = miss.headers["x-audio-cache-entry-id"]
    # the seeding's last writes (its audit events, lookup counts) committed now, not later:
    # a commit empties the hot path's memo, which test_a_memod_… needs to keep its answer
    await api.services.audit.flush()
    await api.services.hits.flush()
    return f"/v1/agents/{agent}/audio-cache/{entry_id}/file", miss.content


async def _memod(api: Api, url: str) -> httpx.Response:
    """A download answered from the hot path's memo (once the seeding's last writes, hit
    counts and lookups, have committed: each commit empties the memo)."""
    hot_path = hot_path_of(api.client)
    assert hot_path is not None
    for _ in range(100):
        before = hot_path.from_memo
        r = await api.client.get(url, headers=api.headers)
        assert r.status_code == 307
        if hot_path.from_memo > before:
            return r
        await asyncio.sleep(0.05)
    raise AssertionError("the download never came from the memo")


async def _at_a_second_start() -> None:
    """X-Amz-Date has whole seconds: signed early in one, a 1 s URL has ~1 s left."""
    await asyncio.sleep(1.05 - time.time() % 1)


async def test_a_download_is_a_redirect_to_the_same_bytes_on_s3(
    api: Api, stored: tuple[str, bytes], s3_location: S3Location
) -> None:
    url, audio = stored
    r = await api.client.get(url, headers=api.headers)
    assert r.status_code == 307 and r.content == b""
    location = r.headers["location"]
    assert location.startswith(f"{s3_location.endpoint}/{s3_location.bucket}/")
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=60&" in location
    assert r.headers["cache-control"] == "no-store"  # the URL is a credential

    followed = await api.client.get(url, headers=api.headers, follow_redirects=True)
    assert followed.status_code == 200 and followed.content == audio
    assert [h.status_code for h in followed.history] == [307]
    assert str(followed.url).startswith(s3_location.endpoint or "")
    entry = (await api.entries(url.split("/")[3]))["entries"][0]
    assert followed.headers["content-type"] == "audio/wav"
    assert followed.headers["content-disposition"] == content_disposition(
        entry["audioFilename"] or f"{entry['id']}.wav"
    )
    assert followed.headers["cache-control"] == "private, no-cache"
    assert followed.headers["content-length"] == str(len(audio))

    # S3 answers the Range the client sends along
    ranged = await api.client.get(
        url, headers={**api.headers, "Range": "bytes=100-199"}, follow_redirects=True
    )
    assert ranged.status_code == 206 and ranged.content == audio[100:200]
    assert ranged.headers["content-range"] == f"bytes 100-199/{len(audio)}"


async def test_what_needs_no_bytes_is_still_answered_by_audiocache(
    api: Api, stored: tuple[str, bytes]
) -> None:
    url, audio = stored
    head = await api.client.head(url, headers=api.headers)  # a URL signs one method: GET
    assert head.status_code == 200 and "location" not in head.headers
    assert head.headers["content-length"] == str(len(audio))
    etag = head.headers["etag"]
    same = await api.client.get(url, headers={**api.headers, "If-None-Match": etag})
    assert same.status_code == 304 and "location" not in same.headers
    beyond = await api.client.get(url, headers={**api.headers, "Range": f"bytes={len(audio)}-"})
    assert_envelope(beyond, 416, "RANGE_NOT_SATISFIABLE")
    # If-Range names our ETag, which S3's (an MD5) is not: audiocache sends the range
    if_range = {**api.headers, "Range": "bytes=0-9", "If-Range": etag}
    part = await api.client.get(url, headers=if_range)
    assert part.status_code == 206 and part.content == audio[:10]


async def test_the_runtime_path_still_answers_its_hit_with_the_bytes(
    api: Api, stored: tuple[str, bytes]
) -> None:
    url, audio = stored
    agent = url.split("/")[3]
    for _ in range(2):  # the long way, then the hot path's memo
        hit = await api.speak(agent, "Thanks for calling")
        assert hit.status_code == 200 and hit.headers["x-audio-cache"] == "hit"
        assert hit.content == audio and "location" not in hit.headers


async def test_a_stored_conversion_is_redirected_too(api: Api, stored: tuple[str, bytes]) -> None:
    url, _audio = stored
    converted = f"{url}?output_format=ulaw_8000"
    first = await api.client.get(converted, headers=api.headers, follow_redirects=True)
    assert first.status_code == 200 and first.headers["content-type"] == "audio/basic"
    # once stored, the conversion is a blob like any: a redirect to it, same bytes
    again = await api.client.get(converted, headers=api.headers)
    assert again.status_code == 307
    followed = await api.client.get(converted, headers=api.headers, follow_redirects=True)
    assert followed.content == first.content and followed.headers["content-type"] == "audio/basic"
    assert followed.headers["content-disposition"] == first.headers["content-disposition"]


async def test_an_unauthorized_or_unknown_download_gets_no_redirect(
    api: Api, stored: tuple[str, bytes]
) -> None:
    url, _audio = stored
    nobody = await api.client.get(url)
    assert_envelope(nobody, 401)
    wrong = await api.client.get(url, headers={"X-API-KEY": "ac_not-a-key"})
    assert_envelope(wrong, 401)
    reader_of_nothing = await api.new_key(["agents:read"])
    forbidden = await api.client.get(url, headers={"X-API-KEY": reader_of_nothing})
    assert_envelope(forbidden, 403)
    unknown = url.rsplit("/", 2)[0] + "/999999/file"
    assert_envelope(await api.client.get(unknown, headers=api.headers), 404)
    for refused in (nobody, wrong, forbidden):
        assert "location" not in refused.headers


@pytest.mark.parametrize("presign_seconds", [1])
async def test_the_location_expires(api: Api, stored: tuple[str, bytes]) -> None:
    url, audio = stored
    await _at_a_second_start()
    location = (await api.client.get(url, headers=api.headers)).headers["location"]
    async with httpx.AsyncClient(timeout=10) as s3:
        fresh = await s3.get(location)
        assert fresh.status_code == 200 and fresh.content == audio
        await asyncio.sleep(2.1)
        expired = await s3.get(location)
        assert expired.status_code == 403 and b"AccessDenied" in expired.content


@pytest.mark.parametrize(("presign_seconds", "database"), [(1, "sqlite")])
async def test_a_memod_download_is_signed_anew_for_each_request(
    api: Api, stored: tuple[str, bytes]
) -> None:
    url, audio = stored
    hot_path = hot_path_of(api.client)
    assert hot_path is not None
    first = await _memod(api, url)
    await asyncio.sleep(2.1)  # the first URL is now expired
    await _at_a_second_start()
    before = hot_path.from_memo
    again = await api.client.get(url, headers=api.headers)
    assert again.status_code == 307 and hot_path.from_memo == before + 1
    assert again.headers["location"] != first.headers["location"]
    async with httpx.AsyncClient(timeout=10) as s3:
        fresh = await s3.get(again.headers["location"])
        assert fresh.status_code == 200 and fresh.content == audio
        assert (await s3.get(first.headers["location"])).status_code == 403


async def test_a_memod_redirect_to_a_lost_blob_is_not_handed_out(
    api: Api, stored: tuple[str, bytes]
) -> None:
    url, _audio = stored
    await _memod(api, url)
    sha = (await api.client.head(url, headers=api.headers)).headers["etag"].strip('"')
    await api.services.blobs.delete(sha)  # lost by hand: no commit tells the memo
    lost = await api.client.get(url, headers=api.headers)
    assert_envelope(lost, 503, "STORAGE_UNAVAILABLE")  # as without offload; S3 would say 404


def test_the_setting_is_refused_without_an_s3_blob_store(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="AUDIOCACHE_BLOB_URL is not s3://"):
        Settings(data_dir=tmp_path, offload="s3-presigned")
    with pytest.raises(ValidationError, match="the S3 access keys are not set"):
        Settings(data_dir=tmp_path, offload="s3-presigned", blob_url="s3://bucket/prefix")
    with pytest.raises(ValidationError):
        Settings(data_dir=tmp_path, offload="s3-presigned", offload_presign_seconds=0)
    keyed = Settings(
        data_dir=tmp_path,
        offload="s3-presigned",
        blob_url="s3://bucket/prefix",
        s3_access_key_id="ak",
        s3_secret_access_key="sk",  # type: ignore[arg-type]
    )
    with pytest.raises(ValueError, match="needs an S3 blob store"):
        build_services(keyed, engines=[], blobs=MemoryBlobStore())


def test_serve_refuses_to_start_with_a_folder_blob_store(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "AUDIOCACHE_OFFLOAD": "s3-presigned"}
    done = subprocess.run(
        [*audiocache_cli(), "serve", "--port", "0", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode != 0
    assert "AUDIOCACHE_OFFLOAD=s3-presigned" in done.stderr
    assert "AUDIOCACHE_BLOB_URL is not s3://" in done.stderr

"""The service on PostgreSQL + S3 while a part goes away: radosgw stopped, PostgreSQL
restarted. Writes fail in the envelope, the runtime path still answers (unstored), what the
part that is up holds keeps being served, and everything recovers with no restart of ours.

Each part here is a private one (its own radosgw, its own cluster), so stopping it
disturbs no other test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from audio_cache_helpers import BASE, replace_file
from realservers import PostgresCluster, Radosgw, create_bucket
from support import Api, assert_envelope, sine_wav

from audiocache.config import Settings


@pytest.fixture(scope="module")
def private_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radosgw]:
    gateway = Radosgw(tmp_path_factory.mktemp("private-ceph"))
    try:
        gateway.start()
        create_bucket(gateway, "outages")
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def backend() -> str:
    return "postgres+s3"


@pytest.fixture
def settings(tmp_path, private_gateway: Radosgw, private_cluster: PostgresCluster) -> Settings:  # type: ignore[no-untyped-def]
    private_cluster.drop_database("app")
    return Settings(
        data_dir=tmp_path / "data",
        database_url=private_cluster.create_database("app"),
        blob_url=f"s3://outages/{tmp_path.name}",
        s3_endpoint_url=private_gateway.endpoint,
        s3_access_key_id=private_gateway.access_key,
        s3_secret_access_key=private_gateway.secret_key,
        s3_timeout_seconds=2,
        hit_flush_seconds=0.1,
    )


def assert_unstored_miss(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 200, r.text[:300]
    assert r.headers["x-audio-cache"] == "miss"
    assert "x-audio-cache-entry-id" not in r.headers


async def test_object_storage_down_then_back(
    api: Api, agent: str, entry_id: str, private_gateway: Radosgw
) -> None:
    url = f"{BASE}/{entry_id}/file"
    before = await api.client.get(url, headers=api.headers)
    assert before.status_code == 200
    private_gateway.stop_gateway()
    try:
        # The runtime path: synthesized, answered, not stored.
        assert_unstored_miss(await api.speak(agent, "A phrase while S3 is down"))
        assert api.services.cache.degraded.unstored_phrases >= 1
        # Audio held by the stopped part cannot be served: 503, never a 500 or a hang.
        assert_envelope(await api.client.get(url, headers=api.headers), 503, "STORAGE_UNAVAILABLE")
        # Metadata is on PostgreSQL, which is up: listing works.
        assert (await api.entries(agent))["totalCount"] == 1
        # A request whose point is to write fails in the envelope.
        r = await replace_file(api, entry_id, sine_wav(0.2))
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
    finally:
        private_gateway.start_gateway()
    # Back: no restart of the service; the failed upload left nothing half-written.
    again = await api.client.get(url, headers=api.headers)
    assert again.status_code == 200 and again.content == before.content
    stored = await api.speak(agent, "A phrase after S3 came back")
    assert stored.status_code == 200 and stored.headers.get("x-audio-cache-entry-id")
    assert (await api.entries(agent))["totalCount"] == 2
    report = await _check(api)
    assert report.healthy, report


async def test_database_restarted(
    api: Api, agent: str, entry_id: str, private_cluster: PostgresCluster
) -> None:
    url = f"{BASE}/{entry_id}/file"
    assert (await api.client.get(url, headers=api.headers)).status_code == 200
    private_cluster.stop_server()
    try:
        r = await api.client.get(url, headers=api.headers)
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
        assert "retry-after" in r.headers
        r = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
        assert_envelope(r, 503, "STORAGE_UNAVAILABLE")
    finally:
        private_cluster.start_server()
    for _attempt in range(50):
        r = await api.client.get(url, headers=api.headers)
        if r.status_code == 200:
            break
    assert r.status_code == 200
    assert (await api.entries(agent))["totalCount"] == 1


async def assert_not_ready_naming(api: Api, part: str, other: str) -> None:
    r = await api.client.get("/readyz")
    body = assert_envelope(r, 503, "NOT_READY")
    assert "retry-after" in r.headers
    assert part in body["error_message"] and other not in body["error_message"], body


async def test_readiness_names_a_stopped_object_store(api: Api, private_gateway: Radosgw) -> None:
    assert (await api.client.get("/readyz")).status_code == 200
    private_gateway.stop_gateway()
    try:
        await assert_not_ready_naming(api, "blob store", "database")
    finally:
        private_gateway.start_gateway()
    r = await api.client.get("/readyz")
    assert r.status_code == 200, r.text


async def test_readiness_names_a_stopped_database(
    api: Api, private_cluster: PostgresCluster
) -> None:
    assert (await api.client.get("/readyz")).status_code == 200
    private_cluster.stop_server()
    try:
        await assert_not_ready_naming(api, "database", "blob store")
    finally:
        private_cluster.start_server()
    for _attempt in range(50):  # the pool's first connection after the restart may be stale
        r = await api.client.get("/readyz")
        if r.status_code == 200:
            break
    assert r.status_code == 200, r.text


async def _check(api: Api):  # type: ignore[no-untyped-def]
    from audiocache.storage import gc

    return await gc.check(api.services.db, api.services.blobs)

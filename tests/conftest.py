"""Fixtures: an in-process app per test (SQLite + a folder + espeak-ng + a fake engine)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from realservers import PostgresCluster, Radosgw, create_bucket
from support import ALL_GRANTS, Api, require_tool

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import Services, build_services
from audiocache.storage.blobs.s3 import S3Location
from audiocache.tts.espeak import EspeakEngine
from audiocache.tts.fake import FakeEngine


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUDIOCACHE_"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", hit_flush_seconds=0.1, key_cache_seconds=0)


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def services(settings: Settings, fake_engine: FakeEngine) -> Services:
    require_tool("espeak-ng")
    return build_services(settings, engines=[EspeakEngine(), fake_engine])


@pytest.fixture
async def client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings, services)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            c.app = app  # type: ignore[attr-defined]  # for tests that look inside the app
            yield c


@pytest.fixture
async def api(client: httpx.AsyncClient, services: Services) -> Api:
    """Account 'acme' with a key granting everything."""
    _record, key = await services.keys.create("acme", set(ALL_GRANTS))
    return Api(client=client, key=key, account="acme", services=services)


@pytest.fixture(scope="session")
def radosgw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Radosgw]:
    """Ceph's S3 gateway, started once for the session (about 13 s) when a test needs it."""
    gateway = Radosgw(tmp_path_factory.mktemp("ceph"))
    try:
        yield gateway.start()
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session (about 1-3 s to create)."""
    cluster = PostgresCluster(tmp_path_factory.mktemp("pg"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture
def s3_location(radosgw: Radosgw) -> S3Location:
    """A fresh bucket per test, so tests never see each other's objects."""
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    create_bucket(radosgw, bucket)
    return S3Location(
        bucket=bucket,
        prefix="blobs",
        endpoint=radosgw.endpoint,
        region=radosgw.region,
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
    )

"""Fixtures: an in-process app per test (SQLite + a folder + espeak-ng + a fake engine)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from realservers import DatabaseFactory, PostgresCluster, Radosgw, create_bucket
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


# Every test that builds the service runs once per backend pair; a module whose tests are
# about one backend only overrides the ``backend`` fixture.
BACKENDS = ("sqlite+fs", "postgres+s3")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    options: dict[str, object] = {}
    if "postgres" in backend:
        options["database_url"] = request.getfixturevalue("postgres_database")
    if "s3" in backend:
        options.update(s3_settings(request.getfixturevalue("s3_location")))
    return Settings(
        data_dir=tmp_path / "data", hit_flush_seconds=0.1, key_cache_seconds=0, **options
    )


def s3_settings(location: S3Location) -> dict[str, object]:
    return {
        "blob_url": f"s3://{location.bucket}/{location.prefix}",
        "s3_endpoint_url": location.endpoint,
        "s3_region": location.region,
        "s3_access_key_id": location.access_key_id,
        "s3_secret_access_key": location.secret_access_key,
    }


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
def postgres() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster for the session (about 1-3 s to create)."""
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def s3_bucket(radosgw: Radosgw) -> str:
    create_bucket(radosgw, "audiocache-tests")
    return "audiocache-tests"


@pytest.fixture(scope="session")
def postgres_template(postgres: PostgresCluster) -> str:
    """A database migrated once; each test gets a copy (CREATE DATABASE … TEMPLATE)."""
    return postgres.create_template("audiocache_template")


@pytest.fixture(scope="session")
def postgres_databases(
    postgres: PostgresCluster, postgres_template: str
) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres, postgres_template)
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture
def postgres_database(
    postgres: PostgresCluster, postgres_databases: DatabaseFactory
) -> Iterator[str]:
    """A fresh migrated database of its own for the test."""
    name = postgres_databases.take()
    yield postgres.url_of(name)
    postgres_databases.give_back(name)


@pytest.fixture
def s3_location(radosgw: Radosgw, s3_bucket: str) -> S3Location:
    """A fresh prefix per test, so tests never see each other's objects."""
    return S3Location(
        bucket=s3_bucket,
        prefix=f"t-{uuid.uuid4().hex[:16]}/blobs",
        endpoint=radosgw.endpoint,
        region=radosgw.region,
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
    )

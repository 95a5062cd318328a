"""A second, fresh instance for the transfer tests: its own data folder, on the other
backend pair than the test's own (SQLite+folder ↔ PostgreSQL+S3), so a round trip crosses
backends both ways."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from support import ALL_GRANTS, Api

from audiocache.app import create_app
from audiocache.config import Settings
from audiocache.services import build_services
from audiocache.storage.blobs.s3 import S3Location
from audiocache.tts.fake import FakeEngine

IDENTITY = (
    "transcript",
    "provider",
    "providerVoiceId",
    "languageCode",
    "duration",
    "hitCount",
    "cachedAt",
    "imported",
    "regenerated",
    "pinned",
    "audioFilename",
)


def other_backend_settings(
    request: pytest.FixtureRequest, backend: str, data_dir: Path
) -> Settings:
    options: dict[str, object] = {}
    if backend == "sqlite+fs":  # the test's own is SQLite: the fresh one is PostgreSQL + S3
        factory = request.getfixturevalue("postgres_databases")
        postgres = request.getfixturevalue("postgres")
        name = factory.take()
        request.addfinalizer(lambda: factory.give_back(name))
        options["database_url"] = postgres.url_of(name)
        radosgw = request.getfixturevalue("radosgw")
        location = S3Location(
            bucket=request.getfixturevalue("s3_bucket"),
            prefix=f"t-{uuid.uuid4().hex[:16]}/blobs",
            endpoint=radosgw.endpoint,
            region=radosgw.region,
            access_key_id=radosgw.access_key,
            secret_access_key=radosgw.secret_key,
        )
        options.update(
            blob_url=f"s3://{location.bucket}/{location.prefix}",
            s3_endpoint_url=location.endpoint,
            s3_region=location.region,
            s3_access_key_id=location.access_key_id,
            s3_secret_access_key=location.secret_access_key,
        )
    return Settings(data_dir=data_dir, hit_flush_seconds=0.1, key_cache_seconds=0, **options)


@asynccontextmanager
async def instance(settings: Settings, account: str = "acme") -> AsyncIterator[Api]:
    services = build_services(settings, engines=[FakeEngine()])
    app = create_app(settings, services)
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fresh") as client:
            _record, key = await services.keys.create(account, set(ALL_GRANTS))
            yield Api(client=client, key=key, account=account, services=services)


async def listing(api: Api, agent: str) -> list[dict]:
    body = await api.entries(agent, limit=200, sort="transcript:asc")
    return list(body["entries"])


async def audio(api: Api, agent: str, entry_id: str) -> bytes:
    r = await api.client.get(f"/v1/agents/{agent}/audio-cache/{entry_id}/file", headers=api.headers)
    assert r.status_code == 200, r.text
    return r.content


def identity(entry: dict) -> tuple:
    return tuple(entry[name] for name in IDENTITY)


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def manifest_of(archive: bytes) -> dict:
    return json.loads(members(archive)["manifest.json"])

"""The deployment of docs/deploy.md, for real: two `audiocache serve` instances on one
PostgreSQL database and one S3 bucket, behind nginx with deploy/nginx.conf; then a backup
(pg_dump + the bucket's objects) restored into a fresh cluster and a fresh prefix."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import obstore
import pytest
from obstore.store import S3Store
from realservers import PostgresCluster, Radosgw
from support import LiveServer, free_port, require_tool

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def instance_env(gateway: Radosgw, bucket: str, prefix: str, database_url: str) -> dict[str, str]:
    return {
        "AUDIOCACHE_DATABASE_URL": database_url,
        "AUDIOCACHE_BLOB_URL": f"s3://{bucket}/{prefix}",
        "AUDIOCACHE_S3_ENDPOINT_URL": gateway.endpoint,
        "AUDIOCACHE_S3_ACCESS_KEY_ID": gateway.access_key,
        "AUDIOCACHE_S3_SECRET_ACCESS_KEY": gateway.secret_key,
        "AUDIOCACHE_SIGNING_SECRET": "one-secret-for-every-instance",
        "AUDIOCACHE_PIPER_ENABLED": "false",
    }


class Nginx:
    """nginx with one of deploy/'s configurations, placeholders filled in (``more``: any
    others that configuration has, e.g. BLOBS=/path)."""

    def __init__(
        self, prefix: Path, upstream_ports: list[int], conf: str = "nginx.conf", **more: str
    ) -> None:
        self.prefix = prefix
        self.port = free_port()
        upstreams = "\n        ".join(f"server 127.0.0.1:{p};" for p in upstream_ports)
        config = (ROOT / "deploy" / conf).read_text()
        config = config.replace("__LISTEN__", str(self.port)).replace("__PREFIX__", str(prefix))
        for name, value in more.items():
            config = config.replace(f"__{name}__", value)
        self.config = prefix / "nginx.conf"
        prefix.mkdir(parents=True, exist_ok=True)
        self.config.write_text(config.replace("__UPSTREAMS__", upstreams))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Nginx:
        binary = require_tool("nginx")
        self.process = subprocess.Popen(
            [binary, "-c", str(self.config), "-p", str(self.prefix)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(100):
            try:
                httpx.get(f"{self.url}/healthz", timeout=0.5)
                return self
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise RuntimeError(stderr) from None
                time.sleep(0.05)
        raise RuntimeError("nginx did not start")

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def upstreams_used(self) -> set[str]:
        log = (self.prefix / "access.log").read_text()
        return set(re.findall(r" (127\.0\.0\.1:\d+) ", log))


@pytest.fixture
def deployment(
    tmp_path: Path, postgres: PostgresCluster, radosgw: Radosgw, s3_bucket: str
) -> Iterator[tuple[list[LiveServer], dict[str, str]]]:
    database = f"deploy_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(database)
    env = instance_env(radosgw, s3_bucket, f"deploy-{uuid.uuid4().hex[:12]}", url)
    # Started at once on an empty database: one migrates, the other waits for it.
    servers = [LiveServer(tmp_path / f"instance-{n}", env) for n in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda server: server.start(timeout=60), servers))
        yield servers, {**env, "database": database}
    finally:
        for server in servers:
            server.stop()
        postgres.drop_database(database)


async def test_instances_behind_nginx_then_backup_and_restore(
    tmp_path: Path,
    deployment: tuple[list[LiveServer], dict[str, str]],
    postgres: PostgresCluster,
    radosgw: Radosgw,
    s3_bucket: str,
) -> None:
    servers, env = deployment
    created = servers[0].cli("keys", "create", "--account", "acme", "--grant", "*")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    headers = {"X-API-KEY": key}
    phrases = [f"Thanks for calling, option {n} of the menu." for n in range(10)]

    with Nginx(tmp_path / "nginx", [s.port for s in servers]) as nginx:
        async with httpx.AsyncClient(base_url=nginx.url, headers=headers, timeout=60) as client:
            body = {
                "name": "Front desk",
                "agentId": "front",
                "responseSettings": {"greeting": "Hi", "languageCode": "en-US"},
                "voiceSettings": {"voiceId": "en-us"},
            }
            assert (await client.post("/v1/accounts/acme/agents", json=body)).status_code == 200
            rule = {"admission": "always", "personalData": "cache"}  # phrases carry numbers
            policy = await client.put("/v1/agents/front/cache-policy", json=rule)
            assert policy.status_code == 200
            answers = await asyncio.gather(
                *(client.post("/v1/agents/front/tts", json={"text": p}) for p in phrases * 3)
            )
            assert [a.status_code for a in answers] == [200] * 30
            listing = (await client.get("/v1/agents/front/audio-cache?limit=50")).json()
            assert listing["totalCount"] == 10
            audio = {}
            for entry in listing["entries"]:
                r = await client.get(f"/v1/agents/front/audio-cache/{entry['id']}/file")
                assert r.status_code == 200 and r.content[:4] == b"RIFF"
                audio[entry["id"]] = (entry["transcript"], r.content)
        assert nginx.upstreams_used() == {f"127.0.0.1:{s.port}" for s in servers}

    # Backup: the database (pg_dump) and the bucket's objects (copied to a backup prefix).
    dump = tmp_path / "audiocache.dump"
    postgres.dump(env["database"], dump)
    source_prefix = env["AUDIOCACHE_BLOB_URL"].split("/", 3)[3]
    restored_prefix = f"restored-{uuid.uuid4().hex[:12]}"
    store = S3Store(
        s3_bucket,
        endpoint=radosgw.endpoint,
        access_key_id=radosgw.access_key,
        secret_access_key=radosgw.secret_key,
        region=radosgw.region,
        client_options={"allow_http": True},
        virtual_hosted_style_request=False,
    )
    copied = 0
    async for batch in obstore.list(store, prefix=source_prefix):
        for meta in batch:
            data = await (await obstore.get_async(store, meta["path"])).bytes_async()
            target = restored_prefix + meta["path"][len(source_prefix) :]
            await obstore.put_async(store, target, bytes(data))
            copied += 1
    assert copied >= 10

    # Restore into a fresh cluster, serve from the copy, find every entry and its audio.
    fresh = PostgresCluster().start()
    try:
        restored_url = fresh.restore("audiocache", dump)
        restored_env = instance_env(radosgw, s3_bucket, restored_prefix, restored_url)
        server = LiveServer(tmp_path / "restored", restored_env).start(timeout=60)
        try:
            with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
                listing = client.get("/v1/agents/front/audio-cache?limit=50").json()
                assert listing["totalCount"] == 10
                for entry in listing["entries"]:
                    transcript, content = audio[entry["id"]]
                    assert entry["transcript"] == transcript
                    r = client.get(f"/v1/agents/front/audio-cache/{entry['id']}/file")
                    assert r.status_code == 200 and r.content == content
            check = server.cli("check")
            assert check.returncode == 0, check.stdout + check.stderr
        finally:
            server.stop()
    finally:
        fresh.stop()
    shutil.rmtree(tmp_path / "nginx", ignore_errors=True)

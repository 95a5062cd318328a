"""Serving offload, for real: ``audiocache serve`` with AUDIOCACHE_OFFLOAD=x-accel-redirect
behind nginx with deploy/nginx-offload.conf. audiocache checks the key and finds the entry;
nginx sends the blob from the folder. Bytes, headers, ranges, a 404, a revoked key, and
the blob folder not reachable from outside."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import LiveServer
from test_deployment import Nginx

pytestmark = pytest.mark.slow


@pytest.fixture
def offloading(tmp_path: Path) -> Iterator[tuple[LiveServer, Nginx]]:
    env = {"AUDIOCACHE_OFFLOAD": "x-accel-redirect", "AUDIOCACHE_PIPER_ENABLED": "false"}
    # nginx's workers (user nobody when started as root) must reach the blob folder, and
    # pytest's own temp folders are root's alone: a folder of our own they may traverse.
    with tempfile.TemporaryDirectory(prefix="audiocache-offload-") as shared:
        os.chmod(shared, 0o711)
        yield from _serve(Path(shared) / "data", tmp_path / "nginx", env)


def _serve(data: Path, prefix: Path, env: dict[str, str]) -> Iterator[tuple[LiveServer, Nginx]]:
    server = LiveServer(data, env).start()
    try:
        blobs = str((data / "blobs").resolve())
        with Nginx(prefix, [server.port], "nginx-offload.conf", BLOBS=blobs) as nginx:
            yield server, nginx
    finally:
        server.stop()


def test_nginx_sends_the_audio_audiocache_authorized(
    offloading: tuple[LiveServer, Nginx],
) -> None:
    server, nginx = offloading
    created = server.cli("keys", "create", "--account", "acme", "--grant", "*")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    headers = {"X-API-KEY": key}
    with httpx.Client(base_url=nginx.url, headers=headers, timeout=60) as client:
        body = {
            "name": "Front desk",
            "agentId": "front",
            "responseSettings": {"greeting": "Hi", "languageCode": "en-US"},
            "voiceSettings": {"voiceId": "en-us"},
        }
        assert client.post("/v1/accounts/acme/agents", json=body).status_code == 200
        rule = {"admission": "always"}
        assert client.put("/v1/agents/front/cache-policy", json=rule).status_code == 200
        miss = client.post("/v1/agents/front/tts", json={"text": "Please hold."})
        assert miss.headers["x-audio-cache"] == "miss" and miss.content[:4] == b"RIFF"
        entry_id = miss.headers["x-audio-cache-entry-id"]
        audio = miss.content

        # a runtime-path hit: nginx's bytes, audiocache's headers
        hit = client.post("/v1/agents/front/tts", json={"text": "Please hold."})
        assert hit.status_code == 200 and hit.content == audio
        assert hit.headers["x-audio-cache"] == "hit"
        assert hit.headers["x-audio-cache-entry-id"] == entry_id
        assert hit.headers["content-type"] == "audio/wav"
        assert hit.headers["content-length"] == str(len(audio))
        assert "x-accel-redirect" not in hit.headers
        assert hit.headers["x-polyai-correlation-id"]

        url = f"/v1/agents/front/audio-cache/{entry_id}/file"
        file = client.get(url)
        assert file.status_code == 200 and file.content == audio
        sha = file.headers["etag"].strip('"')
        assert len(sha) == 64
        assert file.headers.get_list("etag") == [f'"{sha}"']
        assert file.headers["content-disposition"].startswith("attachment;")
        assert file.headers["accept-ranges"] == "bytes"
        # The response came through the redirect: audiocache itself sent no body.
        direct = httpx.get(server.url + url, headers=headers)
        assert direct.status_code == 200 and direct.content == b""
        assert direct.headers["x-accel-redirect"] == f"/_audiocache_blobs/{sha[:2]}/{sha}"

        # byte ranges, by nginx
        part = client.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == audio[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(audio)}"
        both = client.get(url, headers={"Range": "bytes=0-9,20-29"})
        assert both.status_code == 206 and both.headers["content-type"].startswith("multipart/")
        assert audio[:10] in both.content and audio[20:30] in both.content
        # what nginx is never asked: unsatisfiable ranges, conditionals (the envelope, 304)
        beyond = client.get(url, headers={"Range": f"bytes={len(audio) + 10}-"})
        assert beyond.status_code == 416 and beyond.json()["error_code"]
        same = client.get(url, headers={"If-None-Match": f'"{sha}"'})
        assert same.status_code == 304
        ranged_if = client.get(url, headers={"Range": "bytes=0-3", "If-Range": f'"{sha}"'})
        assert ranged_if.status_code == 206 and ranged_if.content == audio[:4]
        head = client.head(url)
        assert head.status_code == 200 and head.headers["content-length"] == str(len(audio))

        # an unknown entry: audiocache's 404, nothing from the folder
        unknown = client.get("/v1/agents/front/audio-cache/999999/file")
        assert unknown.status_code == 404 and unknown.json()["error_code"]
        # the folder itself is not reachable from outside
        assert client.get(f"/_audiocache_blobs/{sha[:2]}/{sha}").status_code == 404

        # a revoked key is refused at once
        reader = server.cli("keys", "create", "--account", "acme", "--grant", "audio_cache:read")
        reader_key = reader.stdout.strip().splitlines()[-1]
        assert client.get(url, headers={"X-API-KEY": reader_key}).status_code == 200
        key_id = reader_key.split("_")[1]
        revoked = server.cli("keys", "revoke", key_id)
        assert revoked.returncode == 0, revoked.stderr + revoked.stdout
        refused = client.get(url, headers={"X-API-KEY": reader_key})
        assert refused.status_code == 401 and refused.json()["error_code"]
        assert refused.content != audio

"""Shared test helpers: a seeded API, WAV builders, the envelope check, a live server."""

from __future__ import annotations

import io
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

ALL_GRANTS = (
    "audio_cache:read",
    "audio_cache:write",
    "agents:read",
    "agents:write",
    "voice_library:read",
    "voice_library:write",
)


def tar_of(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of ``files`` (name → bytes), as archives and takes uploads are."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sine_wav(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0) -> bytes:
    frames = int(seconds * rate)
    pcm = struct.pack(
        f"<{frames}h", *(int(8000 * math.sin(2 * math.pi * freq * n / rate)) for n in range(frames))
    )
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buffer.getvalue()


def assert_envelope(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """The contract's error envelope, with error_id = the correlation id header."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"success", "error", "error_id", "error_code", "error_message", "data"}
    assert body["success"] is False and body["data"] is None
    assert body["error_id"] == response.headers["x-polyai-correlation-id"]
    assert body["error_code"].isupper() and " " not in body["error_code"]
    assert body["error"] and body["error_message"]
    assert "Traceback" not in response.text and '"detail"' not in response.text
    if code is not None:
        assert body["error_code"] == code, body
    return body


@dataclass
class Api:
    """An API client bound to one account's key, with seeding shortcuts."""

    client: httpx.AsyncClient
    key: str
    account: str
    services: Any = None
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-KEY": self.key}

    async def new_key(self, grants: Iterable[str], account: str | None = None) -> str:
        _record, key = await self.services.keys.create(account or self.account, set(grants))
        return key

    async def create_agent(
        self,
        agent_id: str = "agent-1",
        voice: str = "fake:alpha",
        admission: str = "always",
        personal_data: str = "cache",
    ) -> str:
        """An agent whose phrases are stored (test phrases carry numbers, which the
        personal-data rule would keep out: ``personal_data="skip"`` to test that rule)."""
        body = {
            "name": f"Agent {agent_id}",
            "agentId": agent_id,
            "responseSettings": {"greeting": "Hello", "languageCode": "en-US"},
            "voiceSettings": {"voiceId": voice},
        }
        r = await self.client.post(
            f"/v1/accounts/{self.account}/agents", json=body, headers=self.headers
        )
        assert r.status_code == 200, r.text
        if admission != "default" or personal_data != "skip":
            r = await self.client.put(
                f"/v1/agents/{agent_id}/cache-policy",
                json={"admission": admission, "personalData": personal_data},
                headers=self.headers,
            )
            assert r.status_code == 200, r.text
        return agent_id

    async def speak(self, agent_id: str, text: str, **extra: Any) -> httpx.Response:
        return await self.client.post(
            f"/v1/agents/{agent_id}/tts", json={"text": text, **extra}, headers=self.headers
        )

    async def seed_entry(self, agent_id: str, text: str, **extra: Any) -> str:
        """Store an entry through the runtime path (agent admission 'always'); returns its id."""
        r = await self.speak(agent_id, text, **extra)
        assert r.status_code == 200, r.text
        entry_id = r.headers.get("x-audio-cache-entry-id")
        assert entry_id, "agent admission must be 'always' to seed"
        return entry_id

    async def entries(self, agent_id: str, **params: Any) -> dict:
        r = await self.client.get(
            f"/v1/agents/{agent_id}/audio-cache", params=params, headers=self.headers
        )
        assert r.status_code == 200, r.text
        return r.json()


def raw_response(raw: bytes) -> httpx.Response | None:
    """The first complete HTTP/1.1 response (with a Content-Length) in ``raw``, else None."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(part.strip() for part in line.split(":", 1)) for line in lines]
    length = int(dict((k.lower(), v) for k, v in headers).get("content-length", "-1"))
    if length < 0 or len(body) < length:
        return None
    return httpx.Response(int(status_line.split()[1]), headers=headers, content=body[:length])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def audiocache_cli() -> list[str]:
    return [sys.executable, "-m", "audiocache"]


class LiveServer:
    """``audiocache serve`` as a real process on a free loopback port."""

    def __init__(
        self, data_dir: Path, env: dict[str, str] | None = None, *, workers: int = 1
    ) -> None:
        self.data_dir = data_dir
        self.workers = workers
        self.port = free_port()
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> LiveServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            [
                *audiocache_cli(),
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--workers",
                str(self.workers),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """kill -9: no shutdown hooks, no flush."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*audiocache_cli(), *args, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )


class ThreadedServer:
    """An app under uvicorn in a background thread, on a real socket (what only a socket
    shows: streaming, first bytes, hang-ups). The app's services live in that thread's loop.
    The server is configured as ``audiocache serve`` configures it (audiocache.server), from
    the app's settings, but leaves the test process's logging alone."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        from audiocache.server import uvicorn_config

        self.port = free_port()
        config = uvicorn_config(
            app.state.services.settings,
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            log_config=None,
            loop="asyncio",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("threaded server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)


IN_CI = os.environ.get("CI") == "true"


def require_tool(name: str) -> str:
    """A system tool the test needs: skip locally if missing, fail loudly under CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (make test installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def backend_env(settings: Any) -> dict[str, str]:
    """The environment that puts an `audiocache` process on the same database and blob
    store as these (test) settings."""
    env: dict[str, str] = {}
    if settings.database_url:
        env["AUDIOCACHE_DATABASE_URL"] = settings.database_url
    if settings.blob_url:
        env["AUDIOCACHE_BLOB_URL"] = settings.blob_url
        env["AUDIOCACHE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url or ""
        env["AUDIOCACHE_S3_REGION"] = settings.s3_region
        env["AUDIOCACHE_S3_ACCESS_KEY_ID"] = settings.s3_access_key_id or ""
        secret = settings.s3_secret_access_key
        env["AUDIOCACHE_S3_SECRET_ACCESS_KEY"] = secret.get_secret_value() if secret else ""
    return env

"""``audiocache serve --workers 2`` hands every setting to its workers intact, secrets
included: a cloud engine inside a worker calls the provider with the real key."""

from __future__ import annotations

from pathlib import Path

import httpx
import psutil
import pytest
from pydantic import SecretStr
from support import LiveServer
from tts.fake_providers import API_KEY, FakeOpenAI, serve

from audiocache.config import WORKER_SETTINGS_ENV, Settings

pytestmark = pytest.mark.slow


def test_worker_environ_round_trips_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        openai_api_key="sk-real",
        cartesia_api_key="ck-real",
        head_timeout_seconds=2.5,
        workers=3,
    )
    environ = settings.worker_environ()
    assert "sk-real" in environ[WORKER_SETTINGS_ENV]
    monkeypatch.setenv(WORKER_SETTINGS_ENV, environ[WORKER_SETTINGS_ENV])
    monkeypatch.setenv("AUDIOCACHE_OPENAI_API_KEY", "********")  # what the parent would leak
    handed = Settings.for_worker()
    assert handed == settings
    assert isinstance(handed.openai_api_key, SecretStr)
    assert handed.openai_api_key.get_secret_value() == "sk-real"


def test_a_cloud_engine_in_a_worker_gets_the_real_key(tmp_path: Path) -> None:
    served = serve(FakeOpenAI())
    fake = served.fake
    env = {
        "AUDIOCACHE_OPENAI_API_KEY": API_KEY,
        "AUDIOCACHE_OPENAI_BASE_URL": f"{fake.url}/v1",
        "AUDIOCACHE_PIPER_ENABLED": "false",
        "AUDIOCACHE_CLOUD_MAX_ATTEMPTS": "1",
    }
    server = LiveServer(tmp_path / "srv", env=env, workers=2)
    try:
        created = server.cli(
            "keys",
            "create",
            "--account",
            "acme",
            "--grant",
            "agents:write",
            "--grant",
            "audio_cache:read",
        )
        assert created.returncode == 0, created.stderr
        headers = {"X-API-KEY": created.stdout.strip().splitlines()[-1]}
        server.start()
        assert server.process is not None
        workers = psutil.Process(server.process.pid).children()
        assert len([p for p in workers if "python" in p.name()]) >= 2, workers
        with httpx.Client(base_url=server.url, headers=headers, timeout=20) as c:
            agent = {
                "name": "Bot",
                "agentId": "bot",
                "responseSettings": {"greeting": "hi"},
                "voiceSettings": {"voiceId": "openai:alloy"},
            }
            assert c.post("/v1/accounts/acme/agents", json=agent).status_code == 200
            # several connections, so that both workers are likely to take some
            for n in range(6):
                with httpx.Client(base_url=server.url, headers=headers, timeout=20) as one:
                    r = one.post("/v1/agents/bot/tts", json={"text": f"phrase number {n}"})
                assert r.status_code == 200, r.text
                assert r.headers["content-type"] == "audio/wav"
        assert len(fake.requests) == 6
        assert {rec.headers["authorization"] for rec in fake.requests} == {f"Bearer {API_KEY}"}
        log = server.log_path.read_text()
        assert API_KEY not in log, "the key must not be logged"
    finally:
        server.stop()
        served.server.should_exit = True
        served.thread.join(timeout=5)

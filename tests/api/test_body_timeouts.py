"""Body timeouts, in process: a body that goes silent, or that trickles in for longer than
the total body time, ends with 408 REQUEST_TIMEOUT in the envelope and ``Connection: close``
(the live tests show the socket closed and the memory freed)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import Api, assert_envelope, sine_wav

from audiocache.config import Settings

IDLE = 0.4
TOTAL = 1.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        key_cache_seconds=0,
        body_idle_timeout_seconds=IDLE,
        body_timeout_seconds=TOTAL,
    )


async def trickle(data: bytes, pause: float, piece: int = 1) -> AsyncIterator[bytes]:
    for start in range(0, len(data), piece):
        yield data[start : start + piece]
        await asyncio.sleep(pause)


async def stall_after(data: bytes, pause: float) -> AsyncIterator[bytes]:
    yield data[: len(data) // 2]
    await asyncio.sleep(pause)
    yield data[len(data) // 2 :]


async def test_a_silent_json_body_is_dropped_after_the_idle_timeout(api: Api) -> None:
    agent = await api.create_agent("bot")
    body = json.dumps({"text": "hello there"}).encode()
    started = time.monotonic()
    r = await api.client.post(
        f"/v1/agents/{agent}/tts",
        content=stall_after(body, IDLE * 5),
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert time.monotonic() - started < IDLE * 5
    body_json = assert_envelope(r, 408, "REQUEST_TIMEOUT")
    assert "sent nothing" in body_json["error_message"]
    assert r.headers["connection"] == "close"


async def test_a_trickling_upload_is_dropped_after_the_total_body_time(
    api: Api, entry_id: str, agent: str
) -> None:
    wav = sine_wav(0.5)
    started = time.monotonic()
    r = await api.client.patch(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/file",
        content=trickle(wav, IDLE / 4, piece=256),  # never silent for long, never done in time
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    elapsed = time.monotonic() - started
    body = assert_envelope(r, 408, "REQUEST_TIMEOUT")
    assert f"took over {TOTAL:g} s" in body["error_message"]
    assert TOTAL * 0.9 <= elapsed < TOTAL + 1.0
    assert r.headers["connection"] == "close"
    listed = await api.entries(agent)
    assert listed["entries"][0]["duration"] != 0.5  # the entry kept its audio


async def test_an_upload_in_time_is_stored(api: Api, entry_id: str, agent: str) -> None:
    wav = sine_wav(0.5)
    r = await api.client.patch(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/file",
        content=trickle(wav, IDLE / 4, piece=len(wav) // 3 + 1),
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204, r.text

"""What the Audio Cache contract tests share: the agent they use, shape checks, calls."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
from support import Api, sine_wav

from audiocache.audio.wav import parse_wav

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
ENTRY_FIELDS = {
    "id",
    "transcript",
    "cachedAt",
    "hitCount",
    "duration",
    "regenerated",
    "provider",
    "providerVoiceId",
    "audioFilename",
    "imported",
    "languageCode",
}
# audiocache's own; the contract's schema allows extra fields
EXTENSION_FIELDS = {"pinned", "lastHitAt"}
NON_NUMERIC_IDS = ["abc", "1.5", "-1", "\uff11\uff12"]  # the last: full-width digits


# -- helpers ----------------------------------------------------------------------------


def assert_entry_shape(entry: dict[str, Any]) -> None:
    assert set(entry) == ENTRY_FIELDS | EXTENSION_FIELDS, set(entry) ^ ENTRY_FIELDS
    assert isinstance(entry["id"], str) and entry["id"].isdigit()
    assert datetime.fromisoformat(entry["cachedAt"]).tzinfo is not None
    assert isinstance(entry["hitCount"], int) and entry["hitCount"] >= 0
    assert isinstance(entry["duration"], int | float) and entry["duration"] > 0
    for name in ("regenerated", "imported", "pinned"):
        assert isinstance(entry[name], bool)
    for name in ("transcript", "provider", "providerVoiceId", "languageCode"):
        assert isinstance(entry[name], str)
    assert entry["audioFilename"] is None or isinstance(entry["audioFilename"], str)
    assert entry["lastHitAt"] is None or datetime.fromisoformat(entry["lastHitAt"]).tzinfo


def assert_json(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def assert_wav(response: httpx.Response, status: int = 200) -> bytes:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "audio/wav"
    parse_wav(response.content)
    return response.content


def assert_no_content(response: httpx.Response) -> None:
    assert response.status_code == 204, response.text[:500]
    assert response.content == b""


async def blob_files(api: Api) -> set[str]:
    """Hashes of the blobs in the store, whichever backend holds them."""
    return {blob.sha256 async for blob in api.services.blobs.iter_blobs()}


def etag_sha(response: httpx.Response) -> str:
    return response.headers["etag"].strip('"')


async def entry_by_id(api: Api, entry_id: str, agent: str = AGENT) -> dict[str, Any]:
    listed = await api.entries(agent, limit=200)
    return next(e for e in listed["entries"] if e["id"] == entry_id)


async def download(api: Api, entry_id: str, **headers: str) -> httpx.Response:
    return await api.client.get(f"{BASE}/{entry_id}/file", headers={**api.headers, **headers})


async def replace_file(
    api: Api, entry_id: str, body: bytes, filename: str | None = None, agent: str = AGENT
) -> httpx.Response:
    headers: dict[str, str | bytes] = {**api.headers, "Content-Type": "audio/wav"}
    if filename is not None:
        headers["X-Filename"] = filename.encode("utf-8")  # as a client sends a UTF-8 name
    return await api.client.patch(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/file", content=body, headers=headers
    )


async def replace_details(
    api: Api,
    entry_id: str,
    *,
    text: str = "A studio take",
    wav: bytes | None = None,
    settings: str | None = None,
    agent: str = AGENT,
) -> httpx.Response:
    settings = json.dumps({"text": text, "config": {}}) if settings is None else settings
    return await api.client.put(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/details",
        files={"file": ("take.wav", sine_wav() if wav is None else wav, "audio/wav")},
        data={"settings": settings},
        headers=api.headers,
    )


async def preview(api: Api, entry_id: str, body: Any, agent: str = AGENT) -> httpx.Response:
    return await api.client.post(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/synthesize", json=body, headers=api.headers
    )


async def bulk_delete(api: Api, ids: Any, agent: str = AGENT) -> httpx.Response:
    return await api.client.post(
        f"/v1/agents/{agent}/audio-cache/bulk-delete", json={"ids": ids}, headers=api.headers
    )

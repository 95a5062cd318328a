"""A download opens its blob before the headers go out, with one read: on S3 one GET and no
HEAD; once open, a delete that collects the blob cannot cut the response short."""

from __future__ import annotations

from typing import Any

import pytest
from support import Api

from audiocache.api.audio_response import blob_response
from audiocache.storage.blobs.base import sha256_hex
from audiocache.storage.blobs.s3 import S3BlobStore


async def _run(response: Any, method: str = "GET", headers: list[Any] | None = None) -> dict:
    """Run an ASGI response; its status, headers and the whole body it sent."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "method": method, "headers": headers or [], "path": "/"}
    await response(scope, receive, send)
    start = sent[0]
    return {
        "status": start["status"],
        "headers": {k.decode(): v.decode() for k, v in start["headers"]},
        "body": b"".join(m.get("body", b"") for m in sent[1:]),
        "more": sent[-1].get("more_body", False),
    }


async def test_a_blob_collected_after_it_was_opened_is_still_served_whole(api: Api) -> None:
    data = bytes(range(256)) * 2000  # 512 000 bytes: more than one chunk
    info = await api.services.blobs.put(data)
    response = await blob_response(
        api.services.blobs, info.sha256, info.size, media_type="audio/wav"
    )
    await api.services.blobs.delete(info.sha256)  # a delete's sweep, between open and send
    sent = await _run(response)
    assert sent["status"] == 200 and sent["body"] == data and not sent["more"]
    assert sent["headers"]["content-length"] == str(len(data))


async def test_a_range_from_zero_is_cut_from_the_opened_body(api: Api) -> None:
    data = bytes(range(256)) * 2000
    info = await api.services.blobs.put(data)
    response = await blob_response(
        api.services.blobs, info.sha256, info.size, media_type="audio/wav"
    )
    await api.services.blobs.delete(info.sha256)
    sent = await _run(response, headers=[(b"range", b"bytes=0-299999")])
    assert sent["status"] == 206 and sent["body"] == data[:300000]


@pytest.mark.parametrize("backend", ["postgres+s3"])  # the request count of S3 only
async def test_a_download_or_hit_on_s3_is_one_get_and_no_head(api: Api, agent: str) -> None:
    entry_id = await api.seed_entry(agent, "Counted requests")
    blobs = api.services.blobs
    assert isinstance(blobs, S3BlobStore)
    url = f"/v1/agents/{agent}/audio-cache/{entry_id}/file"
    before = blobs.requests.copy()
    r = await api.client.get(url, headers=api.headers)
    assert r.status_code == 200 and r.headers["etag"].strip('"') == sha256_hex(r.content)
    assert blobs.requests - before == {"get": 1}  # the first: opened, and kept by the memo
    # Again, and for ranges (from byte 0, as a browser's audio element asks, and further
    # in): at most that one GET each (none while the hot path's memo holds the bytes).
    for extra in ({}, {"Range": "bytes=0-"}, {"Range": "bytes=100-199"}):
        before = blobs.requests.copy()
        r = await api.client.get(url, headers={**api.headers, **extra})
        assert r.status_code in (200, 206) and r.content, extra
        made = blobs.requests - before
        assert "head" not in made and made["get"] <= 1, (extra, made)
    # A runtime-path hit: the same (lost audio is found by its GET, then healed).
    before = blobs.requests.copy()
    r = await api.speak(agent, "Counted requests")
    made = blobs.requests - before
    assert r.headers["x-audio-cache"] == "hit" and "head" not in made and made["get"] <= 1

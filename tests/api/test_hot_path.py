"""The hot path answers downloads and runtime calls exactly as the full app does.

Two apps share one set of services: one with the hot path (the default), one without. The
same requests go to both; status, headers and body must agree (but for the correlation id
and a multipart boundary), and the hot path must really have answered the ones it claims.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import ALL_GRANTS, Api

from audiocache.api.hot_path import HotPath
from audiocache.app import create_app
from audiocache.services import Services

IGNORED_HEADERS = {"x-polyai-correlation-id", "date", "server"}


@pytest.fixture
async def cold(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The same services behind an app without the hot path (no lifespan: `api` runs it)."""
    settings = services.settings.model_copy(update={"hot_path": False})
    app = create_app(settings, dataclasses.replace(services, settings=settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        client.app = app  # type: ignore[attr-defined]
        yield client


def hot_path_of(client: httpx.AsyncClient) -> HotPath | None:
    layer = client.app.middleware_stack  # type: ignore[attr-defined]
    while layer is not None:
        if isinstance(layer, HotPath):
            return layer
        layer = getattr(layer, "app", None)
    return None


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in IGNORED_HEADERS}
    body = response.content
    boundary = re.search(r"boundary=(\w+)", headers.get("content-type", ""))
    if boundary:
        headers["content-type"] = headers["content-type"].replace(boundary.group(1), "B")
        body = body.replace(boundary.group(1).encode(), b"B")
    if headers.get("content-type") == "application/json":
        body = re.sub(rb'"error_id": "[^"]+"', b'"error_id": "-"', body)
    return response.status_code, headers, body


@pytest.fixture
async def world(api: Api) -> dict[str, str]:
    agent = await api.create_agent("hot-agent", voice="fake:alpha", admission="always")
    entry = await api.seed_entry(agent, "Thanks for calling.")
    other = await api.new_key(ALL_GRANTS, account="other")
    no_read = await api.new_key(["agents:read", "audio_cache:write"])
    return {"agent": agent, "entry": entry, "other": other, "no_read": no_read}


DOWNLOADS = [
    ("GET", "{agent}/audio-cache/{entry}/file", {}, True),
    ("HEAD", "{agent}/audio-cache/{entry}/file", {}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"Range": "bytes=0-99"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"Range": "bytes=0-9,20-29"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"Range": "bytes=999999-"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"Accept": "audio/basic"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"X-API-KEY": ""}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"X-API-KEY": "nope"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"X-API-KEY": "{no_read}"}, True),
    ("GET", "{agent}/audio-cache/{entry}/file", {"X-API-KEY": "{other}"}, True),
    ("GET", "{agent}/audio-cache/not-a-number/file", {}, True),
    ("GET", "{agent}/audio-cache/999999/file", {}, True),
    ("GET", "no-such-agent/audio-cache/{entry}/file", {}, True),
    ("GET", "{agent}/audio-cache/{entry}/file?output_format=ulaw_8000", {}, False),
    ("GET", "{agent}/audio-cache/{entry}/file?output_format=mp3", {}, False),
    ("GET", "{agent}/audio-cache/{entry}/file/", {}, False),
]


@pytest.mark.parametrize(("method", "path", "headers", "hot"), DOWNLOADS)
async def test_download_answers_agree(
    api: Api,
    cold: httpx.AsyncClient,
    world: dict[str, str],
    method: str,
    path: str,
    headers: dict[str, str],
    hot: bool,
) -> None:
    url = "/v1/agents/" + path.format(**world)
    sent = {**api.headers, **{k: v.format(**world) for k, v in headers.items()}}
    sent = {k: v for k, v in sent.items() if v}
    hot_path = hot_path_of(api.client)
    assert hot_path is not None
    before = hot_path.served
    fast = await api.client.request(method, url, headers=sent)
    assert hot_path.served - before == (1 if hot else 0)
    full = await cold.request(method, url, headers=sent)
    assert hot_path_of(cold) is None
    assert comparable(fast) == comparable(full)


async def test_conditional_download_agrees(
    api: Api, cold: httpx.AsyncClient, world: dict[str, str]
) -> None:
    url = f"/v1/agents/{world['agent']}/audio-cache/{world['entry']}/file"
    etag = (await api.client.get(url, headers=api.headers)).headers["etag"]
    headers = {**api.headers, "If-None-Match": etag}
    fast, full = await api.client.get(url, headers=headers), await cold.get(url, headers=headers)
    assert fast.status_code == 304
    assert comparable(fast) == comparable(full)


SPEAKS: list[tuple[Any, dict[str, str]]] = [
    ({"text": "Thanks for calling."}, {}),  # a hit
    ({"text": "Thanks for calling.", "output_format": "ulaw_8000"}, {}),
    ({"text": "Thanks for calling."}, {"Accept": "audio/basic"}),
    ({"text": "Thanks for calling.", "output_format": "mp3"}, {}),
    ({"text": ""}, {}),
    ({"voice": "fake:alpha"}, {}),
    (b"{not json", {}),
    (b"", {}),
    ({"text": "Thanks for calling."}, {"X-API-KEY": ""}),
    ({"text": "Thanks for calling."}, {"X-API-KEY": "{no_read}"}),
    ({"text": "Thanks for calling."}, {"X-API-KEY": "{other}"}),
]


@pytest.mark.parametrize(("body", "headers"), SPEAKS)
async def test_runtime_path_answers_agree(
    api: Api, cold: httpx.AsyncClient, world: dict[str, str], body: Any, headers: dict[str, str]
) -> None:
    url = f"/v1/agents/{world['agent']}/tts"
    sent = {**api.headers, **{k: v.format(**world) for k, v in headers.items()}}
    sent = {k: v for k, v in sent.items() if v}
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body
    hot_path = hot_path_of(api.client)
    assert hot_path is not None
    before = hot_path.served
    fast = await api.client.post(url, headers=sent, content=content, json=json_body)
    assert hot_path.served - before == 1
    full = await cold.post(url, headers=sent, content=content, json=json_body)
    assert comparable(fast) == comparable(full)


async def test_runtime_path_miss_then_hit_through_the_hot_path(
    api: Api, fake_engine: Any, world: dict[str, str]
) -> None:
    calls = len(fake_engine.calls)
    first = await api.speak(world["agent"], "A phrase nobody said before.")
    second = await api.speak(world["agent"], "A phrase nobody said before.")
    assert (first.headers["x-audio-cache"], second.headers["x-audio-cache"]) == ("miss", "hit")
    assert first.content == second.content
    assert len(fake_engine.calls) == calls + 1
    assert hot_path_of(api.client).served >= 2  # type: ignore[union-attr]


async def test_hot_path_can_be_switched_off(services: Services) -> None:
    settings = services.settings.model_copy(update={"hot_path": False})
    app = create_app(settings, dataclasses.replace(services, settings=settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        client.app = app  # type: ignore[attr-defined]
        await client.get("/healthz")
        assert hot_path_of(client) is None


async def test_hot_path_answers_under_a_root_path(
    api: Api, cold: httpx.AsyncClient, world: dict[str, str]
) -> None:
    """Mounted under a prefix (uvicorn --root-path, a proxy's sub-path), the path the server
    passes carries the prefix; the hot path strips it as the router does."""
    app = api.client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, root_path="/audio")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as prefixed:
        hot_path = hot_path_of(api.client)
        assert hot_path is not None
        before = hot_path.served
        path = f"/v1/agents/{world['agent']}/audio-cache/{world['entry']}/file"
        fast = await prefixed.get("/audio" + path, headers=api.headers)
        spoken = await prefixed.post(
            f"/audio/v1/agents/{world['agent']}/tts",
            json={"text": "Thanks for calling."},
            headers=api.headers,
        )
        assert hot_path.served - before == 2
        assert fast.status_code == 200 and spoken.headers["x-audio-cache"] == "hit"
        assert comparable(fast) == comparable(await cold.get(path, headers=api.headers))


async def test_repeated_requests_are_answered_from_the_memo_alike(
    api: Api, cold: httpx.AsyncClient, world: dict[str, str], services: Services
) -> None:
    hot_path = hot_path_of(api.client)
    assert hot_path is not None
    await services.hits.stop()  # no hit-count commits between the requests (they'd empty it)
    file_url = f"/v1/agents/{world['agent']}/audio-cache/{world['entry']}/file"
    tts_url = f"/v1/agents/{world['agent']}/tts"
    speak = {"text": "Thanks for calling."}
    first = await api.client.get(file_url, headers=api.headers)
    first_hit = await api.client.post(tts_url, json=speak, headers=api.headers)
    before, pending = hot_path.from_memo, services.hits.pending(int(world["entry"]))
    cleared = hot_path.memo.cleared
    again = [await api.client.get(file_url, headers=api.headers) for _ in range(3)]
    hits = [await api.client.post(tts_url, json=speak, headers=api.headers) for _ in range(3)]
    ranged = await api.client.get(file_url, headers={**api.headers, "Range": "bytes=10-19"})
    # On PostgreSQL other work on the cluster (autovacuum after an earlier test) moves the
    # WAL position the memo is valid for: each such start-over costs one request per answer
    # (the file's, the hit's) the long way.
    refills = hot_path.memo.cleared - cleared
    assert refills <= 1, refills
    assert 7 - 2 * refills <= hot_path.from_memo - before <= 7
    assert services.hits.pending(int(world["entry"])) - pending == 3  # memo'd hits count
    assert all(comparable(r) == comparable(first) for r in again)
    assert all(comparable(r) == comparable(first_hit) for r in hits)
    assert ranged.status_code == 206 and ranged.content == first.content[10:20]
    full = await cold.post(tts_url, json=speak, headers=api.headers)
    assert comparable(hits[-1]) == comparable(full)


async def test_a_blob_lost_behind_the_memos_back_is_found_out_at_the_next_commit(
    api: Api, world: dict[str, str], services: Services
) -> None:
    """The memo holds the blob's own bytes (content-addressed), so until the database next
    changes it may go on sending them; from the next commit on, the loss is a 503."""
    await services.hits.stop()
    file_url = f"/v1/agents/{world['agent']}/audio-cache/{world['entry']}/file"
    served = await api.client.get(file_url, headers=api.headers)
    assert served.status_code == 200
    entry = await services.entries.get_in_account("acme", world["agent"], int(world["entry"]))
    assert entry is not None
    path = services.blobs.local_path(entry.blob_sha256)
    if path is None:  # object storage: nothing to lose by hand here
        pytest.skip("blob store without local files")
    path.unlink()
    from_memory = await api.client.get(file_url, headers=api.headers)
    assert from_memory.status_code == 200 and from_memory.content == served.content
    await services.keys.create("acme", {"agents:read"})  # any commit
    lost = await api.client.get(file_url, headers=api.headers)
    assert lost.status_code == 503 and lost.json()["error_code"]


def test_a_blob_response_is_a_starlette_response_with_its_headers_built_once() -> None:
    from audiocache.api.audio_response import BlobResponse

    async def nothing(start: int, end: int) -> Any:
        yield b""

    response = BlobResponse(
        open=nothing, size=1234, etag="ab" * 32, media_type="audio/wav", filename="a b.wav"
    )
    assert response.status_code == 200 and response.media_type == "audio/wav"
    assert response.headers["content-length"] == "1234"
    assert response.headers["etag"] == '"' + "ab" * 32 + '"'
    assert response.headers["content-type"] == "audio/wav"
    assert "filename*=UTF-8''a%20b.wav" in response.headers["content-disposition"]


def test_the_hot_path_answers_the_routes_own_paths_and_permissions(tmp_path: Path) -> None:
    """One place: the routes' RouteSpec names the path the app serves and the permission
    its dependency checks; the hot path matches exactly those."""
    import inspect

    from audiocache.api.audio_cache import DOWNLOAD, download_file
    from audiocache.api.hot_path import FILE_ROUTE, SPEAK_ROUTE
    from audiocache.api.speak import SPEAK, speak
    from audiocache.config import Settings

    paths = create_app(Settings(data_dir=tmp_path)).openapi()["paths"]
    assert {"get", "head"} <= set(paths[DOWNLOAD.template]) and "post" in paths[SPEAK.template]
    for spec, handler in ((DOWNLOAD, download_file), (SPEAK, speak)):
        dependency = inspect.signature(handler).parameters["principal"].default.dependency
        assert dependency.__name__ == f"require_{spec.permission.replace(':', '_')}"
    assert (DOWNLOAD.template, SPEAK.template) == (FILE_ROUTE, SPEAK_ROUTE)
    assert DOWNLOAD.match("/v1/agents/a/audio-cache/7/file") == {"agentId": "a", "entryId": "7"}
    assert DOWNLOAD.match("/v1/agents/a/audio-cache/7/file/") is None

"""The Audio Cache operations (and the runtime path, cache policy) against the contract.

One section per operation: the success case, then every status the reference and our own
``/openapi.json`` list for it, checking status, content type and body shape. Listing is in
test_audio_cache_list.py, the audio file operations in test_audio_cache_files.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from audio_cache_helpers import (
    AGENT,
    BASE,
    NON_NUMERIC_IDS,
    assert_json,
    assert_wav,
    blob_files,
    bulk_delete,
    download,
    etag_sha,
    preview,
)
from support import Api, assert_envelope, sine_wav

# -- delete entry -----------------------------------------------------------------------


async def test_delete_entry_success_then_404(api: Api, entry_id: str) -> None:
    sha = etag_sha(await download(api, entry_id))
    assert sha in await blob_files(api)
    r = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
    assert assert_json(r) == {"success": True}
    assert (await api.entries(AGENT))["totalCount"] == 0
    assert sha not in await blob_files(api)
    again = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
    assert_envelope(again, 404, "NOT_FOUND")
    assert_envelope(await download(api, entry_id), 404, "NOT_FOUND")


async def test_delete_entry_keeps_other_entries(api: Api, entry_id: str) -> None:
    other = await api.seed_entry(AGENT, "Another phrase")
    r = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
    assert assert_json(r) == {"success": True}
    assert [e["id"] for e in (await api.entries(AGENT))["entries"]] == [other]


@pytest.mark.parametrize(
    "path",
    [f"{BASE}/999999", "/v1/agents/nobody/audio-cache/1"],
    ids=["unknown-entry", "unknown-agent"],
)
async def test_delete_entry_missing_is_404(api: Api, agent: str, path: str) -> None:
    assert_envelope(await api.client.delete(path, headers=api.headers), 404, "NOT_FOUND")


async def test_delete_entry_of_another_agent_is_404(api: Api, entry_id: str) -> None:
    await api.create_agent("other")
    r = await api.client.delete(f"/v1/agents/other/audio-cache/{entry_id}", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")
    assert (await api.entries(AGENT))["totalCount"] == 1


# -- non-numeric entryId on every entry operation ----------------------------------------


def _entry_operations(entry: str) -> list[tuple[str, str, dict[str, Any]]]:
    url = f"{BASE}/{entry}"
    wav = sine_wav()
    settings = json.dumps({"text": "x", "config": {}})
    return [
        ("DELETE", url, {}),
        ("GET", f"{url}/file", {}),
        ("PATCH", f"{url}/file", {"content": wav}),
        ("PUT", f"{url}/details", {"files": {"file": wav}, "data": {"settings": settings}}),
        ("POST", f"{url}/synthesize", {"json": {"text": "x", "config": {}}}),
    ]


@pytest.mark.parametrize("bad_id", NON_NUMERIC_IDS)
@pytest.mark.parametrize("operation", range(5), ids=["delete", "get", "patch", "put", "post"])
async def test_non_numeric_entry_id_is_400_invalid_id(
    api: Api, agent: str, operation: int, bad_id: str
) -> None:
    method, url, kwargs = _entry_operations(bad_id)[operation]
    r = await api.client.request(method, url, headers=api.headers, **kwargs)
    body = assert_envelope(r, 400, "INVALID_ID")
    assert "Invalid ID" in body["error_message"]


async def test_head_non_numeric_entry_id_is_400(api: Api, agent: str) -> None:
    r = await api.client.head(f"{BASE}/abc/file", headers=api.headers)
    assert r.status_code == 400 and r.content == b""
    assert r.headers["content-type"].startswith("application/json")


# -- synthesize preview -----------------------------------------------------------------


async def test_preview_returns_audio_and_stores_nothing(
    api: Api, entry_id: str, fake_engine: Any
) -> None:
    listed_before = await api.entries(AGENT)
    blobs_before = await blob_files(api)
    calls_before = len(fake_engine.calls)
    r = await preview(api, entry_id, {"text": "A brand new line", "config": {"speed": 1.2}})
    assert_wav(r)
    assert len(fake_engine.calls) == calls_before + 1
    call = fake_engine.calls[-1]
    assert (call.text, call.voice, call.language) == ("A brand new line", "alpha", "en-US")
    assert call.config == {"speed": 1.2}
    assert await api.entries(AGENT) == listed_before
    assert await blob_files(api) == blobs_before


async def test_preview_uses_the_given_language(api: Api, entry_id: str, fake_engine: Any) -> None:
    r = await preview(api, entry_id, {"text": "Bonjour", "config": {}, "language": "fr-FR"})
    assert_wav(r)
    assert fake_engine.calls[-1].language == "fr-FR"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "x"}, "INVALID_REQUEST"),
        ({"config": {}}, "INVALID_REQUEST"),
        ({"text": 5, "config": {}}, "INVALID_REQUEST"),
        ({"text": "x", "config": {"speed": 0}}, "INVALID_REQUEST"),
        ({"text": "", "config": {}}, "INVALID_TEXT"),
        ({"text": "bell\x07", "config": {}}, "INVALID_TEXT"),
    ],
)
async def test_preview_bad_body_is_400(api: Api, entry_id: str, body: Any, code: str) -> None:
    assert_envelope(await preview(api, entry_id, body), 400, code)


@pytest.mark.parametrize(
    ("content", "code"), [(b"", "EMPTY_PAYLOAD"), (b"{nope", "INVALID_REQUEST")]
)
async def test_preview_unparseable_body_is_400(
    api: Api, entry_id: str, content: bytes, code: str
) -> None:
    r = await api.client.post(
        f"{BASE}/{entry_id}/synthesize",
        content=content,
        headers={**api.headers, "Content-Type": "application/json"},
    )
    assert_envelope(r, 400, code)


@pytest.mark.parametrize(
    ("agent_id", "entry"), [(AGENT, "999999"), ("nobody", "1")], ids=["entry", "agent"]
)
async def test_preview_missing_is_404(api: Api, agent: str, agent_id: str, entry: str) -> None:
    r = await preview(api, entry, {"text": "x", "config": {}}, agent=agent_id)
    assert_envelope(r, 404, "NOT_FOUND")


async def test_preview_engine_failure_is_502(api: Api, entry_id: str, fake_engine: Any) -> None:
    fake_engine.fail_next = 1
    r = await preview(api, entry_id, {"text": "This will fail", "config": {}})
    assert_envelope(r, 502, "SYNTHESIS_FAILED")
    assert_wav(await preview(api, entry_id, {"text": "This will work", "config": {}}))


# -- bulk delete ------------------------------------------------------------------------


async def test_bulk_delete_success(api: Api, agent: str) -> None:
    a = await api.seed_entry(agent, "First")
    b = await api.seed_entry(agent, "Second")
    keep = await api.seed_entry(agent, "Third")
    r = await bulk_delete(api, [a, "abc", b, "999999", a, "abc"])
    body = assert_json(r)
    assert set(body) == {"deleted", "failed"}
    assert sorted(body["deleted"]) == sorted([a, b])
    assert body["failed"] == ["abc", "999999"]
    assert [e["id"] for e in (await api.entries(agent))["entries"]] == [keep]


async def test_bulk_delete_twenty_ids_is_accepted(api: Api, agent: str) -> None:
    ids = [await api.seed_entry(agent, f"Phrase {n}") for n in range(3)]
    unknown = [str(10_000 + n) for n in range(17)]
    body = assert_json(await bulk_delete(api, ids + unknown))
    assert sorted(body["deleted"]) == sorted(ids)
    assert sorted(body["failed"]) == sorted(unknown)


async def test_bulk_delete_entries_of_another_agent_fail(api: Api, entry_id: str) -> None:
    await api.create_agent("other")
    body = assert_json(await bulk_delete(api, [entry_id], agent="other"))
    assert body == {"deleted": [], "failed": [entry_id]}
    assert (await api.entries(AGENT))["totalCount"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {"ids": []},
        {"ids": [str(n) for n in range(1, 22)]},
        {},
        {"ids": "1"},
        {"ids": [1, 2]},
        ["1"],
    ],
    ids=["zero", "twenty-one", "missing", "string", "numbers", "array"],
)
async def test_bulk_delete_bad_body_is_400(api: Api, agent: str, body: Any) -> None:
    r = await api.client.post(f"{BASE}/bulk-delete", json=body, headers=api.headers)
    assert_envelope(r, 400, "INVALID_REQUEST")


async def test_bulk_delete_unknown_agent_is_404(api: Api) -> None:
    assert_envelope(await bulk_delete(api, ["1"], agent="nobody"), 404, "NOT_FOUND")


# -- runtime path: POST /v1/agents/{agentId}/tts ----------------------------------------


async def test_tts_miss_then_hit(api: Api, agent: str, fake_engine: Any) -> None:
    first = await api.speak(agent, "Please hold")
    audio = assert_wav(first)
    assert first.headers["x-audio-cache"] == "miss"
    entry_id = first.headers["x-audio-cache-entry-id"]
    assert entry_id.isdigit()
    second = await api.speak(agent, "Please hold")
    assert assert_wav(second) == audio
    assert second.headers["x-audio-cache"] == "hit"
    assert second.headers["x-audio-cache-entry-id"] == entry_id
    assert second.headers["content-length"] == str(len(audio))
    assert len(fake_engine.calls) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": ""}, "INVALID_TEXT"),
        ({"text": "x" * 5001}, "INVALID_TEXT"),
        ({}, "INVALID_REQUEST"),
        ({"text": "hi", "colour": "blue"}, "INVALID_REQUEST"),
        ({"text": "hi", "voice": "fake:nobody"}, "INVALID_VOICE"),
        ({"text": "hi", "voice": "fake:"}, "INVALID_VOICE"),
        ({"text": "hi", "voice": "nowhere:voice"}, "PROVIDER_UNAVAILABLE"),
    ],
)
async def test_tts_bad_body_is_400(api: Api, agent: str, body: Any, code: str) -> None:
    r = await api.client.post(f"/v1/agents/{agent}/tts", json=body, headers=api.headers)
    assert_envelope(r, 400, code)


async def test_tts_unknown_agent_is_404(api: Api) -> None:
    assert_envelope(await api.speak("nobody", "Hello"), 404, "NOT_FOUND")


async def test_tts_engine_failure_is_502_and_stores_nothing(
    api: Api, agent: str, fake_engine: Any
) -> None:
    fake_engine.fail_next = 1
    assert_envelope(await api.speak(agent, "Unlucky"), 502, "SYNTHESIS_FAILED")
    assert (await api.entries(agent))["totalCount"] == 0
    assert (await api.speak(agent, "Unlucky")).headers["x-audio-cache"] == "miss"


# -- cache policy (audiocache's extension) ----------------------------------------------


async def test_cache_policy_get_and_put(api: Api, agent: str) -> None:
    url = f"/v1/agents/{agent}/cache-policy"
    no_limits = dict.fromkeys(("maxEntries", "maxBytes", "eviction", "ttlSeconds", "ttlFrom"))
    read_only = {"evictedTotal": 0, "usage": {"entries": 0, "bytes": 0}}
    current = assert_json(await api.client.get(url, headers=api.headers))
    assert current == {
        "admission": "always",
        "minHits": None,
        "windowSeconds": None,
        "personalData": "cache",  # the test helper's agents store every phrase
        **no_limits,
        **read_only,
    }
    wanted = {"admission": "min_hits", "minHits": 3, "windowSeconds": 60, **no_limits}
    got = assert_json(await api.client.put(url, json=wanted, headers=api.headers))
    assert got == {**wanted, "personalData": "skip", **read_only}  # left out: the default
    assert assert_json(await api.client.get(url, headers=api.headers)) == got


@pytest.mark.parametrize(
    "body",
    [
        {"admission": "sometimes"},
        {"admission": "min_hits"},
        {"admission": "min_hits", "minHits": 0, "windowSeconds": 60},
        {"admission": "always", "colour": "blue"},
        {},
    ],
)
async def test_cache_policy_bad_body_is_400(api: Api, agent: str, body: Any) -> None:
    r = await api.client.put(f"/v1/agents/{agent}/cache-policy", json=body, headers=api.headers)
    assert_envelope(r, 400, "INVALID_REQUEST")


@pytest.mark.parametrize("method", ["GET", "PUT"])
async def test_cache_policy_unknown_agent_is_404(api: Api, method: str) -> None:
    r = await api.client.request(
        method, "/v1/agents/nobody/cache-policy", json={"admission": "always"}, headers=api.headers
    )
    assert_envelope(r, 404, "NOT_FOUND")


# -- correlation id ---------------------------------------------------------------------


FILE = BASE + "/{entry}/file"
SAMPLE_REQUESTS = {
    # name: (method, path, request kwargs, status)
    "list": ("GET", BASE, {}, 200),
    "download": ("GET", FILE, {}, 200),
    "head": ("HEAD", FILE, {}, 200),
    "range": ("GET", FILE, {"headers": {"Range": "bytes=0-9"}}, 206),
    "not-modified": ("GET", FILE, {"headers": {"If-None-Match": "*"}}, 304),
    "unsatisfiable": ("GET", FILE, {"headers": {"Range": "bytes=999999-"}}, 416),
    "replace": ("PATCH", FILE, {"content": sine_wav()}, 204),
    "policy": ("PUT", f"/v1/agents/{AGENT}/cache-policy", {"json": {"admission": "never"}}, 200),
    "tts": ("POST", f"/v1/agents/{AGENT}/tts", {"json": {"text": "Hi"}}, 200),
    "agents": ("GET", "/v1/accounts/acme/agents", {}, 200),
    "invalid-id": ("GET", BASE + "/abc/file", {}, 400),
    "invalid-audio": ("PATCH", FILE, {"content": b"junk"}, 400),
    "bulk-empty": ("POST", BASE + "/bulk-delete", {"json": {"ids": []}}, 400),
    "missing-entry": ("DELETE", BASE + "/999999", {}, 404),
    "unknown-route": ("GET", "/nope", {}, 404),
    "wrong-method": ("PUT", BASE, {}, 405),
}


@pytest.mark.parametrize("name", list(SAMPLE_REQUESTS))
async def test_correlation_id_on_every_response(api: Api, entry_id: str, name: str) -> None:
    method, path, kwargs, status = SAMPLE_REQUESTS[name]
    kwargs = dict(kwargs)
    url = path.format(entry=entry_id)
    headers = {**api.headers, **kwargs.pop("headers", {})}
    fresh = await api.client.request(method, url, headers=headers, **kwargs)
    assert fresh.status_code == status, fresh.text[:300]
    assert fresh.headers["x-polyai-correlation-id"]
    echoed = await api.client.request(
        method, url, headers={**headers, "X-PolyAI-Correlation-Id": "req-42.abc"}, **kwargs
    )
    assert echoed.status_code == status
    assert echoed.headers["x-polyai-correlation-id"] == "req-42.abc"
    if status >= 400 and method != "HEAD":
        assert assert_envelope(echoed, status)["error_id"] == "req-42.abc"


async def test_correlation_id_on_401(api: Api) -> None:
    r = await api.client.get(BASE, headers={"X-PolyAI-Correlation-Id": "abc-123"})
    assert assert_envelope(r, 401, "UNAUTHORIZED")["error_id"] == "abc-123"


async def test_unsafe_correlation_id_is_replaced(api: Api, agent: str) -> None:
    r = await api.client.get(
        BASE, headers={**api.headers, "X-PolyAI-Correlation-Id": b"bad id\xe9<script>"}
    )
    assert r.status_code == 200
    cid = r.headers["x-polyai-correlation-id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", cid)


async def test_fresh_correlation_ids_differ(api: Api, agent: str) -> None:
    ids = {(await api.client.get(BASE, headers=api.headers)).headers["x-polyai-correlation-id"]}
    ids.add((await api.client.get(BASE, headers=api.headers)).headers["x-polyai-correlation-id"])
    assert len(ids) == 2


# -- our OpenAPI lists exactly what these tests cover -----------------------------------


# 503/504: a lost blob (tests/cache/test_runtime_path.py), a rate-limited or slow cloud
# provider (tests/tts/test_cloud_runtime_path.py, tests/tts/test_cloud_engines.py); 307: the
# presigned S3 redirect of a download (tests/api/test_presigned_offload.py).
OUR_STATUSES = {
    ("get", "/v1/agents/{agentId}/audio-cache"): {"200", "400", "401", "403", "404"},
    ("delete", "/v1/agents/{agentId}/audio-cache/{entryId}"): {"200", "400", "401", "403", "404"},
    ("get", "/v1/agents/{agentId}/audio-cache/{entryId}/file"): {
        *("200", "206", "307", "400", "401", "403", "404", "416", "503"),
    },
    ("head", "/v1/agents/{agentId}/audio-cache/{entryId}/file"): {
        *("200", "206", "400", "401", "403", "404", "416", "503"),
    },
    ("patch", "/v1/agents/{agentId}/audio-cache/{entryId}/file"): {
        *("204", "400", "401", "403", "404"),
    },
    ("put", "/v1/agents/{agentId}/audio-cache/{entryId}/details"): {
        *("204", "400", "401", "403", "404", "409"),
    },
    ("post", "/v1/agents/{agentId}/audio-cache/{entryId}/synthesize"): {
        *("200", "400", "401", "403", "404", "502", "503", "504"),
    },
    ("post", "/v1/agents/{agentId}/audio-cache/bulk-delete"): {
        *("200", "400", "401", "403", "404"),
    },
    ("post", "/v1/agents/{agentId}/tts"): {
        *("200", "400", "401", "403", "404", "502", "503", "504"),
    },
    ("get", "/v1/agents/{agentId}/cache-policy"): {"200", "401", "403", "404"},
    ("put", "/v1/agents/{agentId}/cache-policy"): {"200", "400", "401", "403", "404"},
}


async def test_our_openapi_lists_the_statuses_tested_here(api: Api) -> None:
    r = await api.client.get("/openapi.json")
    spec = assert_json(r)
    for (method, path), statuses in OUR_STATUSES.items():
        assert set(spec["paths"][path][method]["responses"]) == statuses, (method, path)
    ids = [
        op["operationId"]
        for operations in spec["paths"].values()
        for op in operations.values()
        if isinstance(op, dict) and "operationId" in op
    ]
    assert len(ids) == len(set(ids)), "operationIds must be unique"

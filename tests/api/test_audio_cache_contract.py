"""The Audio Cache operations (and the runtime path, cache policy) against the contract.

One section per operation: the success case, then every status the reference and our own
``/openapi.json`` list for it, checking status, content type and body shape.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Api, assert_envelope, sine_wav

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
EXTENSION_FIELDS = {"pinned"}  # audiocache's own; the contract's schema allows extra fields
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


def blob_files(api: Api) -> set[str]:
    root = Path(api.services.settings.resolved_blob_dir())
    return {p.name for p in root.rglob("*") if p.is_file()}


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


@pytest.fixture
async def agent(api: Api) -> str:
    return await api.create_agent(AGENT)


@pytest.fixture
async def entry_id(api: Api, agent: str) -> str:
    return await api.seed_entry(agent, "Thanks for calling")


# -- list -------------------------------------------------------------------------------


async def test_list_success_shape(api: Api, entry_id: str) -> None:
    body = assert_json(await api.client.get(BASE, headers=api.headers))
    assert set(body) == {"entries", "totalCount"}
    assert body["totalCount"] == 1
    (entry,) = body["entries"]
    assert_entry_shape(entry)
    assert entry["id"] == entry_id
    assert entry["transcript"] == "Thanks for calling"
    assert (entry["provider"], entry["providerVoiceId"]) == ("fake", "alpha")
    assert entry["languageCode"] == "en-US"
    assert entry["hitCount"] == 0
    assert entry["imported"] is False and entry["regenerated"] is False
    assert entry["audioFilename"] is None


async def test_list_empty_agent(api: Api, agent: str) -> None:
    assert await api.entries(agent) == {"entries": [], "totalCount": 0}


async def test_list_limit_and_offset_page_and_total_counts_all(api: Api, agent: str) -> None:
    ids = [await api.seed_entry(agent, f"Phrase number {n}") for n in range(5)]
    page = await api.entries(agent, limit=2, offset=1, sort="id:asc")
    assert [e["id"] for e in page["entries"]] == ids[1:3]
    assert page["totalCount"] == 5
    past_the_end = await api.entries(agent, limit=2, offset=10)
    assert past_the_end == {"entries": [], "totalCount": 5}
    default_page = await api.entries(agent)
    assert len(default_page["entries"]) == 5


@pytest.fixture
async def catalogue(api: Api, agent: str) -> list[str]:
    """Entries differing in every sortable/filterable field (espeak gives a second provider)."""
    ids = [
        await api.seed_entry(agent, "Hi"),
        await api.seed_entry(agent, "Thanks for calling, goodbye"),
        await api.seed_entry(agent, "Zebra crossing ahead", voice="fake:beta", language="en-GB"),
        await api.seed_entry(agent, "Bonjour et merci", language="fr-FR"),
        await api.seed_entry(agent, "Hello from espeak", voice="espeak:en-us"),
    ]
    for _ in range(3):
        assert (await api.speak(agent, "Thanks for calling, goodbye")).headers[
            "x-audio-cache"
        ] == "hit"
    assert (await api.speak(agent, "Hi")).headers["x-audio-cache"] == "hit"
    await api.services.hits.flush()
    return ids


SORT_KEYS = {
    "id": lambda e: int(e["id"]),
    "hit_count": lambda e: e["hitCount"],
    "cached_at": lambda e: datetime.fromisoformat(e["cachedAt"]),
    "duration": lambda e: e["duration"],
    "transcript": lambda e: e["transcript"],
    "provider": lambda e: e["provider"],
    "language_code": lambda e: e["languageCode"],
}


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("field", sorted(SORT_KEYS))
async def test_list_sort_orders_by_each_field(
    api: Api, catalogue: list[str], field: str, direction: str
) -> None:
    key = SORT_KEYS[field]
    entries = (await api.entries(AGENT, sort=f"{field}:{direction}"))["entries"]
    values = [key(e) for e in entries]
    assert len(entries) == len(catalogue) and len(set(values)) > 1
    assert values == sorted(values, reverse=direction == "desc")


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_list_sort_by_size(api: Api, catalogue: list[str], direction: str) -> None:
    """The size is not in the entry; the download's Content-Length tells it."""
    entries = (await api.entries(AGENT, sort=f"size:{direction}"))["entries"]
    values = []
    for e in entries:
        head = await api.client.head(f"{BASE}/{e['id']}/file", headers=api.headers)
        values.append(int(head.headers["content-length"]))
    assert len(entries) == len(catalogue) and len(set(values)) > 1
    assert values == sorted(values, reverse=direction == "desc")


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_list_sort_by_last_hit_at(api: Api, agent: str, direction: str) -> None:
    """Not in the entry either: hit B, then later A, and compare their places."""
    a = await api.seed_entry(agent, "Hit last")
    b = await api.seed_entry(agent, "Hit first")
    await api.seed_entry(agent, "Never hit")
    for text in ("Hit first", "Hit last"):
        assert (await api.speak(agent, text)).headers["x-audio-cache"] == "hit"
        await api.services.hits.flush()
    ids = [e["id"] for e in (await api.entries(agent, sort=f"last_hit_at:{direction}"))["entries"]]
    assert len(ids) == 3
    assert (ids.index(b) < ids.index(a)) is (direction == "asc")


@pytest.mark.parametrize("expression", ["hitCount:desc", "cachedAt:asc", "languageCode:desc"])
async def test_list_sort_accepts_camel_case_names(
    api: Api, catalogue: list[str], expression: str
) -> None:
    assert (await api.entries(AGENT, sort=expression))["totalCount"] == len(catalogue)


async def test_list_sort_multi_key(api: Api, catalogue: list[str]) -> None:
    entries = (await api.entries(AGENT, sort="provider:asc,duration:desc"))["entries"]
    keys = [(e["provider"], -e["duration"]) for e in entries]
    assert keys == sorted(keys)
    assert [e["provider"] for e in entries] == ["espeak", "fake", "fake", "fake", "fake"]


async def test_list_sort_ties_are_stable_by_id(api: Api, catalogue: list[str]) -> None:
    entries = (await api.entries(AGENT, sort="provider:asc"))["entries"]
    fake_ids = [int(e["id"]) for e in entries if e["provider"] == "fake"]
    assert fake_ids == sorted(fake_ids)


FILTERS = {
    "transcript:contains:thanks": {"Thanks for calling, goodbye"},
    "transcript:contains:o": {
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
        "Hello from espeak",
    },
    "provider:eq:fake": {
        "Hi",
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
    },
    "provider:eq:espeak": {"Hello from espeak"},
    "voice:eq:beta": {"Zebra crossing ahead"},
    "voice:eq:alpha": {"Hi", "Thanks for calling, goodbye", "Bonjour et merci"},
    "language:eq:en-US": {"Hi", "Thanks for calling, goodbye", "Hello from espeak"},
    "language:eq:fr-FR": {"Bonjour et merci"},
    "imported:eq:false": {
        "Hi",
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
        "Hello from espeak",
    },
    "imported:eq:true": set(),
    "provider:eq:fake and voice:eq:alpha and language:eq:en-US": {
        "Hi",
        "Thanks for calling, goodbye",
    },
    "transcript:contains:o and provider:eq:fake and imported:eq:false": {
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
    },
}


@pytest.mark.parametrize("expression", list(FILTERS))
async def test_list_filter(api: Api, catalogue: list[str], expression: str) -> None:
    body = await api.entries(AGENT, filter=expression)
    assert {e["transcript"] for e in body["entries"]} == FILTERS[expression]
    assert body["totalCount"] == len(FILTERS[expression])


async def test_list_total_count_is_the_filters_matches_not_the_page(
    api: Api, catalogue: list[str]
) -> None:
    body = await api.entries(AGENT, filter="provider:eq:fake", limit=1, offset=1)
    assert len(body["entries"]) == 1
    assert body["totalCount"] == 4


async def test_list_repeated_filter_parameters_combine(api: Api, catalogue: list[str]) -> None:
    params = [("filter", "provider:eq:fake"), ("filter", "language:eq:fr-FR")]
    response = await api.client.get(BASE, params=params, headers=api.headers)
    body = assert_json(response)
    assert [e["transcript"] for e in body["entries"]] == ["Bonjour et merci"]
    assert body["totalCount"] == 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "nope:asc"}, "INVALID_SORT"),
        ({"sort": "duration:sideways"}, "INVALID_SORT"),
        ({"sort": "duration:asc,"}, "INVALID_SORT"),
        ({"sort": ""}, "INVALID_SORT"),
        ({"filter": "nope:eq:x"}, "INVALID_FILTER"),
        ({"filter": "provider:contains:fa"}, "INVALID_FILTER"),
        ({"filter": "imported:eq:maybe"}, "INVALID_FILTER"),
        ({"filter": "transcript"}, "INVALID_FILTER"),
        ({"filter": "transcript:contains:"}, "INVALID_FILTER"),
        ({"filter": "provider:eq:fake and bogus"}, "INVALID_FILTER"),
        ({"limit": "0"}, "INVALID_REQUEST"),
        ({"limit": "201"}, "INVALID_REQUEST"),
        ({"limit": "ten"}, "INVALID_REQUEST"),
        ({"offset": "-1"}, "INVALID_REQUEST"),
        ({"offset": "x"}, "INVALID_REQUEST"),
    ],
)
async def test_list_bad_query_is_400(
    api: Api, agent: str, params: dict[str, str], code: str
) -> None:
    assert_envelope(await api.client.get(BASE, params=params, headers=api.headers), 400, code)


async def test_list_limit_bounds_are_accepted(api: Api, entry_id: str) -> None:
    for limit in (1, 200):
        assert (await api.entries(AGENT, limit=limit))["totalCount"] == 1


async def test_list_unknown_agent_is_404(api: Api) -> None:
    r = await api.client.get("/v1/agents/nobody/audio-cache", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")


# -- delete entry -----------------------------------------------------------------------


async def test_delete_entry_success_then_404(api: Api, entry_id: str) -> None:
    sha = etag_sha(await download(api, entry_id))
    assert sha in blob_files(api)
    r = await api.client.delete(f"{BASE}/{entry_id}", headers=api.headers)
    assert assert_json(r) == {"success": True}
    assert (await api.entries(AGENT))["totalCount"] == 0
    assert sha not in blob_files(api)
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


# -- download (GET and HEAD) ------------------------------------------------------------


@pytest.fixture
async def stored(api: Api, agent: str) -> tuple[str, bytes]:
    """An entry and its exact audio bytes (from the miss that stored it)."""
    r = await api.speak(agent, "The whole audio, byte for byte")
    return r.headers["x-audio-cache-entry-id"], r.content


async def test_download_success(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id)
    assert assert_wav(r) == audio
    assert r.headers["content-length"] == str(len(audio))
    assert re.fullmatch(r'"[0-9a-f]{64}"', r.headers["etag"])
    assert r.headers["accept-ranges"] == "bytes"
    disposition = r.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="{entry_id}.wav"' in disposition


async def test_head_has_headers_and_no_body(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    get = await download(api, entry_id)
    head = await api.client.head(f"{BASE}/{entry_id}/file", headers=api.headers)
    assert head.status_code == 200 and head.content == b""
    for name in ("content-type", "content-length", "etag", "content-disposition"):
        assert head.headers[name] == get.headers[name]
    assert head.headers["content-length"] == str(len(audio))


async def test_download_range_first_100_bytes(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=0-99")
    assert r.status_code == 206
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["content-range"] == f"bytes 0-99/{len(audio)}"
    assert r.headers["content-length"] == "100"
    assert r.content == audio[:100]


async def test_download_suffix_range(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=-10")
    assert r.status_code == 206
    size = len(audio)
    assert r.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"
    assert r.content == audio[-10:]


async def test_download_open_ended_range(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=100-")
    assert r.status_code == 206
    assert r.content == audio[100:]


async def test_download_multi_range_is_multipart_byteranges(
    api: Api, stored: tuple[str, bytes]
) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=0-9,20-29")
    assert r.status_code == 206
    content_type = r.headers["content-type"]
    assert content_type.startswith("multipart/byteranges; boundary=")
    boundary = content_type.split("boundary=", 1)[1]
    assert r.headers["content-length"] == str(len(r.content))
    parts = r.content.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    bodies = []
    for part in parts[1:-1]:
        head, _, data = part.partition(b"\r\n\r\n")
        assert b"Content-Type: audio/wav" in head
        bodies.append((head, data.removesuffix(b"\r\n")))
    size = len(audio)
    assert f"Content-Range: bytes 0-9/{size}".encode() in bodies[0][0]
    assert f"Content-Range: bytes 20-29/{size}".encode() in bodies[1][0]
    assert [data for _, data in bodies] == [audio[0:10], audio[20:30]]


async def test_download_if_range_other_etag_sends_whole(
    api: Api, stored: tuple[str, bytes]
) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=0-99", **{"If-Range": '"someotheretag"'})
    assert r.status_code == 200 and r.content == audio
    assert "content-range" not in r.headers


async def test_download_if_range_same_etag_sends_range(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    etag = (await download(api, entry_id)).headers["etag"]
    r = await download(api, entry_id, Range="bytes=0-99", **{"If-Range": etag})
    assert r.status_code == 206 and r.content == audio[:100]


@pytest.mark.parametrize("spec", ["bytes={size}-", "bytes={size}-{end}", "bytes=-0"])
async def test_download_unsatisfiable_range_is_416(
    api: Api, stored: tuple[str, bytes], spec: str
) -> None:
    entry_id, audio = stored
    size = len(audio)
    r = await download(api, entry_id, Range=spec.format(size=size, end=size + 100))
    assert_envelope(r, 416, "RANGE_NOT_SATISFIABLE")
    assert r.headers["content-range"] == f"bytes */{size}"


async def test_download_overlapping_ranges_are_merged(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="bytes=0-9,5-19")
    assert r.status_code == 206
    assert r.headers["content-type"] == "audio/wav"
    assert r.headers["content-range"] == f"bytes 0-19/{len(audio)}"
    assert r.content == audio[:20]


async def test_download_malformed_range_is_ignored(api: Api, stored: tuple[str, bytes]) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, Range="pages=1-2")
    assert r.status_code == 200 and r.content == audio


@pytest.mark.parametrize("form", ["{etag}", "W/{etag}", '"other", {etag}', "*"])
async def test_download_if_none_match_is_304(
    api: Api, stored: tuple[str, bytes], form: str
) -> None:
    entry_id, _audio = stored
    etag = (await download(api, entry_id)).headers["etag"]
    r = await download(api, entry_id, **{"If-None-Match": form.format(etag=etag)})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == etag


async def test_download_if_none_match_other_etag_is_200(
    api: Api, stored: tuple[str, bytes]
) -> None:
    entry_id, audio = stored
    r = await download(api, entry_id, **{"If-None-Match": '"different"'})
    assert r.status_code == 200 and r.content == audio


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "path",
    [f"{BASE}/999999/file", "/v1/agents/nobody/audio-cache/1/file"],
    ids=["unknown-entry", "unknown-agent"],
)
async def test_download_missing_is_404(api: Api, agent: str, path: str, method: str) -> None:
    r = await api.client.request(method, path, headers=api.headers)
    if method == "GET":
        assert_envelope(r, 404, "NOT_FOUND")
    else:
        assert r.status_code == 404 and r.content == b""


async def test_download_entry_of_another_agent_is_404(api: Api, entry_id: str) -> None:
    await api.create_agent("other")
    r = await api.client.get(f"/v1/agents/other/audio-cache/{entry_id}/file", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")


# -- replace file (PATCH raw WAV) -------------------------------------------------------


async def test_replace_file_success(api: Api, entry_id: str) -> None:
    before = await entry_by_id(api, entry_id)
    wav = sine_wav(seconds=1.25, rate=8000)
    assert_no_content(await replace_file(api, entry_id, wav, filename="studio take.wav"))
    r = await download(api, entry_id)
    assert assert_wav(r) == wav
    assert 'filename="studio take.wav"' in r.headers["content-disposition"]
    after = await entry_by_id(api, entry_id)
    assert_entry_shape(after)
    assert after["duration"] == pytest.approx(1.25)
    assert after["duration"] != before["duration"]
    assert after["audioFilename"] == "studio take.wav"
    assert after["transcript"] == before["transcript"]


async def test_replace_file_utf8_filename(api: Api, entry_id: str) -> None:
    r = await replace_file(api, entry_id, sine_wav(), filename="caf\u00e9 \u2013 take.wav")
    assert_no_content(r)
    assert (await entry_by_id(api, entry_id))["audioFilename"] == "caf\u00e9 \u2013 take.wav"
    disposition = (await download(api, entry_id)).headers["content-disposition"]
    assert "filename*=UTF-8''caf%C3%A9%20%E2%80%93%20take.wav" in disposition
    assert 'filename="caf_ _ take.wav"' in disposition


async def test_replace_file_default_filename_is_entry_id(api: Api, entry_id: str) -> None:
    assert_no_content(await replace_file(api, entry_id, sine_wav()))
    assert (await entry_by_id(api, entry_id))["audioFilename"] == f"{entry_id}.wav"
    r = await download(api, entry_id)
    assert f'filename="{entry_id}.wav"' in r.headers["content-disposition"]


@pytest.mark.parametrize(
    ("raw", "stored_as"),
    [
        ("../../x.wav", "x.wav"),
        ("..\\..\\windows\\x.wav", "x.wav"),
        ("/etc/passwd", "passwd"),
        ("bad\tname.wav", "badname.wav"),
        ("..", None),
    ],
)
async def test_replace_file_filename_is_sanitised(
    api: Api, entry_id: str, raw: str, stored_as: str | None
) -> None:
    assert_no_content(await replace_file(api, entry_id, sine_wav(), filename=raw))
    expected = stored_as or f"{entry_id}.wav"
    assert (await entry_by_id(api, entry_id))["audioFilename"] == expected


async def test_replace_file_releases_the_old_blob(api: Api, entry_id: str) -> None:
    old_sha = etag_sha(await download(api, entry_id))
    assert_no_content(await replace_file(api, entry_id, sine_wav()))
    new_sha = etag_sha(await download(api, entry_id))
    assert new_sha != old_sha
    assert new_sha in blob_files(api) and old_sha not in blob_files(api)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"", "EMPTY_PAYLOAD"),
        (b"not a wav at all", "INVALID_AUDIO"),
        (b"RIFF\x00\x00\x00\x00WAVE", "INVALID_AUDIO"),
        (b"\x00" * (6 * 1024 * 1024 + 1), "PAYLOAD_TOO_LARGE"),
    ],
    ids=["empty", "text", "header-only", "over-6MiB"],
)
async def test_replace_file_bad_body_is_400(
    api: Api, entry_id: str, body: bytes, code: str
) -> None:
    before = (await download(api, entry_id)).content
    assert_envelope(await replace_file(api, entry_id, body), 400, code)
    assert (await download(api, entry_id)).content == before


@pytest.mark.parametrize(
    ("agent_id", "entry"), [(AGENT, "999999"), ("nobody", "1")], ids=["entry", "agent"]
)
async def test_replace_file_missing_is_404(api: Api, agent: str, agent_id: str, entry: str) -> None:
    r = await replace_file(api, entry, sine_wav(), agent=agent_id)
    assert_envelope(r, 404, "NOT_FOUND")


# -- replace details (PUT multipart: file + settings) -----------------------------------


async def test_replace_details_success_changes_transcript_and_lookup(
    api: Api, entry_id: str
) -> None:
    wav = sine_wav(seconds=0.75)
    r = await replace_details(api, entry_id, text="Thank you for your call", wav=wav)
    assert_no_content(r)
    entry = await entry_by_id(api, entry_id)
    assert_entry_shape(entry)
    assert entry["transcript"] == "Thank you for your call"
    assert entry["duration"] == pytest.approx(0.75)
    assert entry["audioFilename"] == "take.wav"
    assert (await download(api, entry_id)).content == wav
    new = await api.speak(AGENT, "Thank you for your call")
    assert new.headers["x-audio-cache"] == "hit"
    assert new.headers["x-audio-cache-entry-id"] == entry_id
    assert new.content == wav
    old = await api.speak(AGENT, "Thanks for calling")
    assert old.headers["x-audio-cache"] == "miss"
    assert old.headers["x-audio-cache-entry-id"] != entry_id


async def test_replace_details_x_filename_wins(api: Api, entry_id: str) -> None:
    r = await api.client.put(
        f"{BASE}/{entry_id}/details",
        files={"file": ("part.wav", sine_wav(), "audio/wav")},
        data={"settings": json.dumps({"text": "New words", "config": {}})},
        headers={**api.headers, "X-Filename": "../header.wav"},
    )
    assert_no_content(r)
    assert (await entry_by_id(api, entry_id))["audioFilename"] == "header.wav"


async def test_replace_details_settings_as_file_part(api: Api, entry_id: str) -> None:
    settings = json.dumps({"text": "From a file part", "config": {"speed": 1.1}}).encode()
    r = await api.client.put(
        f"{BASE}/{entry_id}/details",
        files={"file": ("a.wav", sine_wav(), "audio/wav"), "settings": ("s.json", settings)},
        headers=api.headers,
    )
    assert_no_content(r)
    assert (await entry_by_id(api, entry_id))["transcript"] == "From a file part"


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"settings": "{not json"}, "INVALID_SETTINGS"),
        ({"settings": json.dumps({"config": {}})}, "INVALID_SETTINGS"),
        ({"settings": json.dumps({"text": "x"})}, "INVALID_SETTINGS"),
        ({"settings": json.dumps(["text", "config"])}, "INVALID_SETTINGS"),
        ({"settings": json.dumps({"text": "x", "config": {"speed": -1}})}, "INVALID_SETTINGS"),
        ({"text": "   "}, "INVALID_TEXT"),
        ({"wav": b"not a wav"}, "INVALID_AUDIO"),
        ({"wav": b""}, "EMPTY_PAYLOAD"),
        ({"wav": b"\x00" * (6 * 1024 * 1024 + 1)}, "PAYLOAD_TOO_LARGE"),
    ],
    ids=[
        "bad-json",
        "no-text",
        "no-config",
        "not-object",
        "bad-config",
        "blank-text",
        "not-wav",
        "empty-file",
        "over-6MiB",
    ],
)
async def test_replace_details_bad_input_is_400(
    api: Api, entry_id: str, kwargs: dict[str, Any], code: str
) -> None:
    assert_envelope(await replace_details(api, entry_id, **kwargs), 400, code)
    assert (await entry_by_id(api, entry_id))["transcript"] == "Thanks for calling"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"settings": json.dumps({"text": "x", "config": {}})}},
        {"files": {"file": ("a.wav", sine_wav(), "audio/wav")}},
        {"json": {"settings": {"text": "x", "config": {}}}},
        {"content": b"--x\r\nbroken", "headers": {"Content-Type": "multipart/form-data"}},
    ],
    ids=["no-file", "no-settings", "not-multipart", "malformed-multipart"],
)
async def test_replace_details_bad_form_is_400(
    api: Api, entry_id: str, request_kwargs: dict[str, Any]
) -> None:
    headers = {**api.headers, **request_kwargs.pop("headers", {})}
    r = await api.client.put(f"{BASE}/{entry_id}/details", headers=headers, **request_kwargs)
    assert_envelope(r, 400, "INVALID_REQUEST")


@pytest.mark.parametrize(
    ("agent_id", "entry"), [(AGENT, "999999"), ("nobody", "1")], ids=["entry", "agent"]
)
async def test_replace_details_missing_is_404(
    api: Api, agent: str, agent_id: str, entry: str
) -> None:
    assert_envelope(await replace_details(api, entry, agent=agent_id), 404, "NOT_FOUND")


async def test_replace_details_keeping_the_text(api: Api, entry_id: str) -> None:
    assert_no_content(await replace_details(api, entry_id, text="Thanks for calling"))
    hit = await api.speak(AGENT, "Thanks for calling")
    assert hit.headers["x-audio-cache"] == "hit"
    assert hit.headers["x-audio-cache-entry-id"] == entry_id


async def test_replace_details_onto_an_already_cached_phrase_is_409(
    api: Api, entry_id: str
) -> None:
    other = await api.seed_entry(AGENT, "Goodbye")
    r = await replace_details(api, other, text="Thanks for calling")
    assert_envelope(r, 409, "CONFLICT")
    assert (await entry_by_id(api, other))["transcript"] == "Goodbye"


# -- synthesize preview -----------------------------------------------------------------


async def test_preview_returns_audio_and_stores_nothing(
    api: Api, entry_id: str, fake_engine: Any
) -> None:
    listed_before = await api.entries(AGENT)
    blobs_before = blob_files(api)
    calls_before = len(fake_engine.calls)
    r = await preview(api, entry_id, {"text": "A brand new line", "config": {"speed": 1.2}})
    assert_wav(r)
    assert len(fake_engine.calls) == calls_before + 1
    call = fake_engine.calls[-1]
    assert (call.text, call.voice, call.language) == ("A brand new line", "alpha", "en-US")
    assert call.config == {"speed": 1.2}
    assert await api.entries(AGENT) == listed_before
    assert blob_files(api) == blobs_before


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
    current = assert_json(await api.client.get(url, headers=api.headers))
    assert current == {"admission": "always", "minHits": None, "windowSeconds": None}
    wanted = {"admission": "min_hits", "minHits": 3, "windowSeconds": 60}
    assert assert_json(await api.client.put(url, json=wanted, headers=api.headers)) == wanted
    assert assert_json(await api.client.get(url, headers=api.headers)) == wanted


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
# provider (tests/tts/test_cloud_runtime_path.py, tests/tts/test_cloud_engines.py).
OUR_STATUSES = {
    ("get", "/v1/agents/{agentId}/audio-cache"): {"200", "400", "401", "403", "404"},
    ("delete", "/v1/agents/{agentId}/audio-cache/{entryId}"): {"200", "400", "401", "403", "404"},
    ("get", "/v1/agents/{agentId}/audio-cache/{entryId}/file"): {
        *("200", "206", "400", "401", "403", "404", "416", "503"),
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

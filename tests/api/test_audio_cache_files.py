"""An entry's audio: download (GET/HEAD, ranges, conditional), replace file, replace details."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from audio_cache_helpers import (
    AGENT,
    BASE,
    assert_entry_shape,
    assert_no_content,
    assert_wav,
    blob_files,
    download,
    entry_by_id,
    etag_sha,
    replace_details,
    replace_file,
)
from support import Api, assert_envelope, sine_wav

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


async def test_replace_file_keeps_the_old_take_until_its_entry_goes(
    api: Api, agent: str, entry_id: str
) -> None:
    old_sha = etag_sha(await download(api, entry_id))
    assert_no_content(await replace_file(api, entry_id, sine_wav()))
    new_sha = etag_sha(await download(api, entry_id))
    assert new_sha != old_sha
    # the replaced take stays in the entry's history (take_history_limit) ...
    assert {new_sha, old_sha} <= await blob_files(api)
    # ... and goes with the entry
    r = await api.client.delete(f"/v1/agents/{agent}/audio-cache/{entry_id}", headers=api.headers)
    assert r.status_code < 300, r.text
    assert not {new_sha, old_sha} & await blob_files(api)


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

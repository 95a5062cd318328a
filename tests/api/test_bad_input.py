"""Bad input on every endpoint that takes a body or query: a 4xx in the envelope, and
nothing stored changes (every row of every table, every blob file, byte for byte).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest
import sqlalchemy as sa
from bad_input_bodies import (
    AGENT,
    BASE,
    JSON_TYPE,
    MULTIPART,
    SETTINGS_OK,
    UNICODE_TEXT,
    WAV_TYPE,
    chunked,
    details,
    exact_limit_wav,
    multipart,
)
from bad_input_cases import ALL_CASES, Case
from support import Api, assert_envelope, sine_wav

from audiocache.audio.wav import parse_wav
from audiocache.storage.tables import metadata

# -- what is stored ------------------------------------------------------------------------


async def snapshot(api: Api) -> dict[str, Any]:
    """Every row of every table and every file of the blob folder (name → sha256).

    Hit counts kept in memory are flushed first, so a bad request that counted a hit
    would show up as a change. The audit log is left out: recording the refused request
    (and, on its timer, the seeding's writes) is its job.
    """
    services = api.services
    await services.hits.flush()
    await services.audit.flush()
    tables: dict[str, list[str]] = {}
    async with services.db.read() as conn:
        on_disk = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
        for name in sorted((set(metadata.tables) | set(on_disk)) - {"audit_log"}):
            rows = (await conn.execute(sa.text(f'select * from "{name}"'))).all()
            tables[name] = sorted(repr(tuple(row)) for row in rows)
    blobs = {}
    async for blob in services.blobs.iter_blobs():
        data = await services.blobs.read(blob.sha256)
        blobs[blob.sha256] = hashlib.sha256(data or b"").hexdigest()
    assert tables["audio_cache_entries"], "the snapshot should see the seeded entry"
    assert blobs, "the snapshot should see the seeded entry's blob"
    return {"tables": tables, "blobs": blobs}


@dataclass
class Seeded:
    api: Api
    entry_id: str

    @property
    def entry_url(self) -> str:
        return f"{BASE}/{self.entry_id}"


@pytest.fixture
async def seeded(api: Api) -> Seeded:
    await api.create_agent(AGENT)
    return Seeded(api, await api.seed_entry(AGENT, "hello there"))


@pytest.mark.parametrize("bad", ALL_CASES)
async def test_bad_input_is_refused_and_changes_nothing(seeded: Seeded, bad: Case) -> None:
    before = await snapshot(seeded.api)
    response = await bad.send(seeded)
    body = assert_envelope(response, bad.status, bad.code if isinstance(bad.code, str) else None)
    if isinstance(bad.code, set):
        assert body["error_code"] in bad.code, body
    assert await snapshot(seeded.api) == before


# -- the boundaries and what is accepted -------------------------------------------------


async def test_exactly_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.patch(
        f"{seeded.entry_url}/file", content=wav, headers={**api.headers, **WAV_TYPE}
    )
    assert r.status_code == 204, r.text
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav


async def test_exactly_the_limit_is_accepted_chunked(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.patch(
        f"{seeded.entry_url}/file", content=chunked(wav), headers={**api.headers, **WAV_TYPE}
    )
    assert r.status_code == 204, r.text
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav


async def test_details_with_exactly_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    wav = exact_limit_wav()
    r = await api.client.put(
        f"{seeded.entry_url}/details",
        content=details(wav),
        headers={**api.headers, **MULTIPART},
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["transcript"] == "Replaced text"
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.content == wav


async def test_synthesize_preview_stores_nothing(seeded: Seeded) -> None:
    before = await snapshot(seeded.api)
    r = await seeded.api.client.post(
        f"{seeded.entry_url}/synthesize",
        json={"text": UNICODE_TEXT, "config": {"speed": 1.2}},
        headers=seeded.api.headers,
    )
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    parse_wav(r.content)
    assert await snapshot(seeded.api) == before


async def test_unicode_text_round_trips(seeded: Seeded) -> None:
    api = seeded.api
    r = await api.speak(AGENT, UNICODE_TEXT)
    assert r.status_code == 200, r.text
    parse_wav(r.content)
    entry_id = r.headers["x-audio-cache-entry-id"]
    listed = await api.entries(AGENT, limit=200)
    [entry] = [e for e in listed["entries"] if e["id"] == entry_id]
    assert entry["transcript"] == UNICODE_TEXT
    found = await api.entries(AGENT, filter="transcript:contains:Köln 👋")
    assert [e["id"] for e in found["entries"]] == [entry_id]
    again = await api.speak(AGENT, UNICODE_TEXT)
    assert again.headers["x-audio-cache"] == "hit"
    assert again.headers["x-audio-cache-entry-id"] == entry_id


async def test_escaped_surrogate_pair_is_accepted(seeded: Seeded) -> None:
    """A pair of escapes is one real character (👋); only a lone half is refused."""
    api = seeded.api
    r = await api.client.post(
        f"/v1/agents/{AGENT}/tts",
        content=b'{"text": "wave \\ud83d\\udc4b", "config": {"emotion": "\\u00e9\\ud83d\\ude00"}}',
        headers={**api.headers, **JSON_TYPE},
    )
    assert r.status_code == 200, r.text
    entry_id = r.headers["x-audio-cache-entry-id"]
    [entry] = [e for e in (await api.entries(AGENT))["entries"] if e["id"] == entry_id]
    assert entry["transcript"] == "wave 👋"


async def test_text_at_the_limit_is_accepted(seeded: Seeded) -> None:
    api = seeded.api
    at_limit = "é" * 5000  # characters, not bytes
    body = details(sine_wav(0.2), json.dumps({"text": at_limit, "config": {}}))
    r = await api.client.put(
        f"{seeded.entry_url}/details", content=body, headers={**api.headers, **MULTIPART}
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["transcript"] == at_limit
    before = await snapshot(api)
    assert_envelope(await api.speak(AGENT, "a" * 5001), 400, "INVALID_TEXT")
    assert await snapshot(api) == before


def disposition_filename(header: str) -> str:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == "filename*":
            assert value.startswith("UTF-8''"), header
            return unquote(value[len("UTF-8''") :])
    raise AssertionError(f"no filename* in {header!r}")


def assert_safe_name(name: str) -> None:
    assert name and name not in (".", "..")
    assert "/" not in name and "\\" not in name and not name.startswith("."), name
    assert all(ord(c) >= 0x20 and ord(c) != 0x7F for c in name), repr(name)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("/etc/shadow", "shadow"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("take\x01\x1fone.wav", "takeone.wav"),
        ("del\x7fete.wav", "delete.wav"),
        ("tab\tname.wav", "tabname.wav"),
        ("..", None),
        ("....", None),
        ("a/..", None),
        ("./.", None),
        ("  ", None),
        ("..hidden.wav", "hidden.wav"),
        ("what?<>|*:.wav", "what______.wav"),
        ("Grüße.wav".encode(), "Grüße.wav"),
    ],
    ids=lambda value: repr(value)[:40],
)
async def test_x_filename_is_sanitised(
    seeded: Seeded, sent: str | bytes, expected: str | None
) -> None:
    api = seeded.api
    wav = sine_wav(0.3)
    r = await api.client.patch(
        f"{seeded.entry_url}/file",
        content=wav,
        headers={**api.headers, **WAV_TYPE, "X-Filename": sent},  # type: ignore[dict-item]
    )
    assert r.status_code == 204, r.text
    expected = expected or f"{seeded.entry_id}.wav"
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["audioFilename"] == expected
    assert_safe_name(entry["audioFilename"])
    r = await api.client.get(f"{seeded.entry_url}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav
    assert disposition_filename(r.headers["content-disposition"]) == expected
    ascii_part = r.headers["content-disposition"].split('filename="', 1)[1].split('"', 1)[0]
    assert_safe_name(ascii_part)
    # and nothing was written outside the blob folder under the sent name
    blob_dir = api.services.settings.resolved_blob_dir()
    assert not any(p.name == expected for p in blob_dir.rglob("*"))


async def test_details_part_filename_is_sanitised(seeded: Seeded) -> None:
    api = seeded.api
    wav = sine_wav(0.3)
    body = multipart(
        [("file", "../../../etc/passwd\x7f", wav), ("settings", None, SETTINGS_OK.encode())]
    )
    r = await api.client.put(
        f"{seeded.entry_url}/details", content=body, headers={**api.headers, **MULTIPART}
    )
    assert r.status_code == 204, r.text
    [entry] = (await api.entries(AGENT))["entries"]
    assert entry["audioFilename"] == "passwd"

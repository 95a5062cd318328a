"""Bulk takes through the API: a zip or tar of WAVs + a mapping file → entries' audio."""

from __future__ import annotations

import io
import json
import zipfile

from support import Api, assert_envelope, sine_wav, tar_of
from transfer_helpers import audio

AGENT = "desk"
URL = f"/v1/agents/{AGENT}/audio-cache/takes"


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


async def upload(api: Api, body: bytes, **params: str) -> dict:
    r = await api.client.post(URL, content=body, params=params, headers=api.headers)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_takes_replace_matching_entries_and_create_the_rest_pinned(api: Api) -> None:
    await api.create_agent(AGENT)
    hello = await api.seed_entry(AGENT, "Hello there")
    tuned = await api.seed_entry(AGENT, "Hello there", config={"speed": 1.5})
    other_voice = await api.seed_entry(AGENT, "Hello there", voice="fake:beta")
    studio, fresh = sine_wav(0.4, freq=300.0), sine_wav(0.6, freq=500.0)
    mapping = (
        "file,transcript\n"
        "takes/hello.wav,Hello there\n"
        "takes/new.wav,A brand new phrase\n"
        "takes/missing.wav,Nobody recorded this\n"
        "takes/bad.wav,Not audio at all\n"
    )
    body = zip_of(
        {
            "takes.csv": mapping.encode(),
            "takes/hello.wav": studio,
            "takes/new.wav": fresh,
            "takes/bad.wav": b"RIFF not really",
            "takes/stray.wav": sine_wav(0.1),
        }
    )
    report = await upload(api, body)
    by_file = {r["file"]: r for r in report["results"]}
    assert by_file["takes/hello.wav"]["action"] == "replaced"
    assert sorted(by_file["takes/hello.wav"]["entryIds"]) == sorted([hello, tuned])
    assert by_file["takes/new.wav"]["action"] == "created"
    assert by_file["takes/missing.wav"]["action"] == "failed"
    assert "no such file" in by_file["takes/missing.wav"]["reason"]
    assert by_file["takes/bad.wav"]["action"] == "failed"
    assert by_file["takes/stray.wav"]["action"] == "skipped"
    counts = {k: report[k] for k in ("created", "replaced", "failed", "skipped")}
    assert counts == {"created": 1, "replaced": 1, "failed": 2, "skipped": 1}

    assert await audio(api, AGENT, hello) == studio
    assert await audio(api, AGENT, tuned) == studio
    assert await audio(api, AGENT, other_voice) != studio  # another voice: not that phrase
    entries = {e["id"]: e for e in (await api.entries(AGENT, limit=50))["entries"]}
    assert entries[hello]["imported"] and entries[hello]["audioFilename"] == "hello.wav"
    created = entries[by_file["takes/new.wav"]["entryIds"][0]]
    assert (created["pinned"], created["imported"], created["transcript"]) == (
        True,
        True,
        "A brand new phrase",
    )
    r = await api.speak(AGENT, "A brand new phrase")  # the runtime path serves the take
    assert r.headers["x-audio-cache"] == "hit" and r.content == fresh


async def test_takes_from_a_tar_with_a_json_mapping_and_a_voice(api: Api) -> None:
    await api.create_agent(AGENT)
    beta = await api.seed_entry(AGENT, "Good morning", voice="fake:beta", language="en-GB")
    take = sine_wav(0.3, freq=700.0)
    mapping = json.dumps([{"file": "am.wav", "text": "Good morning", "language": "en-GB"}])
    body = tar_of({"lines.json": mapping.encode(), "am.wav": take, "other.json": b"{}"})
    report = await upload(api, body, voice="fake:beta", map="lines.json")
    assert [(r["file"], r["action"], r["entryIds"]) for r in report["results"]] == [
        ("am.wav", "replaced", [beta])
    ]
    assert await audio(api, AGENT, beta) == take


async def test_takes_refuse_bad_mappings_and_archives(api: Api) -> None:
    await api.create_agent(AGENT)
    wav = sine_wav(0.1)
    cases = {
        "INVALID_MAPPING": [
            zip_of({"a.wav": wav}),  # no mapping file
            zip_of({"a.wav": wav, "m.csv": b"name,words\na.wav,Hi\n"}),  # no such columns
            zip_of({"a.wav": wav, "m.json": b"[1, 2]"}),
            zip_of({"a.wav": wav, "m.json": b"{not json"}),
            zip_of({"a.wav": wav, "m.csv": b"", "n.csv": b""}),  # which one?
        ],
        "INVALID_ARCHIVE": [b"plain text, not an archive" * 40],
    }
    for code, bodies in cases.items():
        for body in bodies:
            r = await api.client.post(URL, content=body, headers=api.headers)
            assert_envelope(r, 400, code)
    assert (await api.entries(AGENT))["totalCount"] == 0
    read_only = await api.new_key(["audio_cache:read"])
    r = await api.client.post(URL, content=b"x", headers={"X-API-KEY": read_only})
    assert_envelope(r, 403, "FORBIDDEN")

"""Strict tuning at every door (issue 8, point 5): one ``VoiceTuningConfig`` with bounded,
finite, strictly typed fields. A bad config is a 400 in the envelope naming the field, and a
bad config already in the database never turns into a 500: it is repaired when read,
rewritten on the next write, and reported at start-up.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from support import Api, assert_envelope, sine_wav

from audiocache.cache.tuning_audit import audit_stored_tuning
from audiocache.services import build_services
from audiocache.storage.tables import entries, voices
from audiocache.tts.espeak import EspeakEngine

AGENT = "bot"
LIBRARY = "/v1/accounts/acme/voice-library"

# (id, field, JSON literal): each is refused wherever a config comes in.
BAD_VALUES = [
    ("nan", "volume", "NaN"),
    ("infinity", "volume", "Infinity"),
    ("minus-infinity", "speed", "-Infinity"),
    ("1e308", "volume", "1e308"),
    ("huge-int", "stability", "1" + "0" * 400),
    ("string-for-number", "speed", '"fast"'),
    ("bool-for-number", "volume", "true"),
    ("negative", "volume", "-1"),
    ("over-bound-speed", "speed", "5"),
    ("over-bound-volume", "volume", "11"),
    ("over-bound-stability", "stability", "1.5"),
    ("number-for-string", "modelId", "7"),
    ("string-for-bool", "instantMode", '"yes"'),
    ("long-string", "emotion", json.dumps("x" * 65)),
    ("extra-field-not-scalar", "pitch", "[1, 2]"),
    ("extra-field-nan", "pitch", "NaN"),
]


def config_literal(field: str, literal: str) -> str:
    return '{"' + field + '": ' + literal + "}"


def json_request(body: str) -> dict[str, Any]:
    return {"content": body.encode(), "headers": {"Content-Type": "application/json"}}


def details_request(body: str) -> dict[str, Any]:
    return {
        "files": {"file": ("take.wav", sine_wav(0.2), "audio/wav")},
        "data": {"settings": '{"text": "A new take", "config": ' + body + "}"},
    }


# door → (method, path with {entry} and {voice}, request kwargs built from a config literal)
Door = tuple[str, str, Callable[[str], dict[str, Any]]]
DOORS: dict[str, Door] = {
    "voice-register": (
        "POST",
        LIBRARY,
        lambda c: json_request(
            '{"name": "Robot", "provider": "espeak", "providerVoiceId": "en-us", "config": '
            + c
            + "}"
        ),
    ),
    "voice-patch": ("PATCH", LIBRARY + "/{voice}", lambda c: json_request('{"config": ' + c + "}")),
    "details": ("PUT", f"/v1/agents/{AGENT}/audio-cache/{{entry}}/details", details_request),
    "tts": (
        "POST",
        f"/v1/agents/{AGENT}/tts",
        lambda c: json_request('{"text": "Hello", "config": ' + c + "}"),
    ),
    "synthesize": (
        "POST",
        f"/v1/agents/{AGENT}/audio-cache/{{entry}}/synthesize",
        lambda c: json_request('{"text": "Hello", "config": ' + c + "}"),
    ),
    "warm": (
        "POST",
        f"/v1/agents/{AGENT}/audio-cache/warm",
        lambda c: json_request('{"phrases": [{"text": "Hello", "config": ' + c + "}]}"),
    ),
}


@pytest.fixture
async def world(api: Api) -> dict[str, str]:
    """An agent with one espeak-ng entry, and one library voice."""
    await api.create_agent(AGENT, voice="en-us")
    entry = await api.seed_entry(AGENT, "Thanks for calling")
    r = await api.client.post(
        LIBRARY,
        json={"name": "Robot", "provider": "espeak", "providerVoiceId": "en-gb", "config": {}},
        headers=api.headers,
    )
    assert r.status_code == 200, r.text
    return {"entry": entry, "voice": r.json()["voice"]["id"]}


async def send(api: Api, door: str, config: str, world: dict[str, str]) -> httpx.Response:
    method, path, build = DOORS[door]
    kwargs = build(config)
    headers = {**kwargs.pop("headers", {}), **api.headers}
    url = path.format(**world)
    return await api.client.request(method, url, headers=headers, **kwargs)


# Validation at the door runs before any storage is touched: one backend is enough for the
# matrix of doors by bad values (the stored-config tests below run on every backend).
ONE_BACKEND = pytest.mark.parametrize("backend", ["sqlite+fs"])


@ONE_BACKEND
@pytest.mark.parametrize(("name", "field", "literal"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
@pytest.mark.parametrize("door", list(DOORS))
async def test_bad_tuning_is_a_400_naming_the_field(
    api: Api, world: dict[str, str], door: str, name: str, field: str, literal: str
) -> None:
    before = await api.entries(AGENT)
    response = await send(api, door, config_literal(field, literal), world)
    body = assert_envelope(response, 400)
    assert body["error_code"] in {"INVALID_REQUEST", "INVALID_SETTINGS"}
    assert f"config.{field}" in body["error_message"], body["error_message"]
    assert await api.entries(AGENT) == before  # refused calls store nothing
    voices = (await api.client.get(LIBRARY, headers=api.headers)).json()["voices"]
    assert [v["config"] for v in voices] == [{}]


@ONE_BACKEND
@pytest.mark.parametrize("door", list(DOORS))
async def test_good_tuning_passes_every_door(api: Api, world: dict[str, str], door: str) -> None:
    # At the bounds, an int where a number goes, and a scalar field the contract does not name.
    config = json.dumps({"speed": 4, "volume": 0, "stability": 1.0, "pitch": "low"})
    response = await send(api, door, config, world)
    assert response.status_code in (200, 204), response.text[:300]


async def test_voice_keeps_the_validated_config(api: Api, world: dict[str, str]) -> None:
    r = await send(api, "voice-patch", '{"speed": 1, "volume": 0.5, "style": "calm"}', world)
    assert r.status_code == 200, r.text
    assert r.json()["voice"]["config"] == {"speed": 1.0, "volume": 0.5, "style": "calm"}


async def test_too_many_extra_fields_are_refused(api: Api, world: dict[str, str]) -> None:
    config = json.dumps({f"x{n}": n for n in range(33)})
    body = assert_envelope(await send(api, "tts", config, world), 400, "INVALID_REQUEST")
    assert "config" in body["error_message"]


async def test_agent_voice_settings_take_no_tuning(api: Api) -> None:
    """The contract's voiceSettings holds only a voiceId (additionalProperties: false): a
    config there is refused, not silently stored."""
    body = {
        "name": "Desk",
        "agentId": "desk",
        "responseSettings": {"greeting": "Hi"},
        "voiceSettings": {"voiceId": "en-us", "config": {"volume": 1e308}},
    }
    r = await api.client.post("/v1/accounts/acme/agents", json=body, headers=api.headers)
    message = assert_envelope(r, 400, "INVALID_REQUEST")["error_message"]
    assert "voiceSettings.config" in message


# -- what is already stored -------------------------------------------------------------


BAD_STORED = '{"volume": NaN, "speed": "fast"}'
BAD_STORED_ENTRY = '{"volume": 1e308, "speed": "fast", "stability": Infinity}'


@pytest.fixture
async def poisoned(api: Api) -> dict[str, str]:
    """An agent speaking with a library voice, one entry of it, both with a stored config
    the model rejects (written with SQL, as an older version or a hand edit would)."""
    r = await api.client.post(
        LIBRARY,
        json={"name": "Robot", "provider": "espeak", "providerVoiceId": "en-us", "config": {}},
        headers=api.headers,
    )
    voice = r.json()["voice"]["id"]
    await api.create_agent(AGENT, voice=voice)
    entry = await api.seed_entry(AGENT, "Thanks for calling")
    await store_config(api, voices, voice, BAD_STORED)
    await store_config(api, entries, int(entry), BAD_STORED_ENTRY)
    return {"voice": voice, "entry": entry}


async def store_config(api: Api, table: sa.Table, row_id: str | int, raw: str) -> None:
    """Straight into the database (SQLite or PostgreSQL), past every check of the API."""
    async with api.services.db.write() as conn:
        await conn.execute(table.update().where(table.c.id == row_id).values(config_json=raw))


async def stored_config(api: Api, table: sa.Table, row_id: str | int) -> Any:
    query = sa.select(table.c.config_json).where(table.c.id == row_id)
    async with api.services.db.read() as conn:
        raw = (await conn.execute(query)).scalar_one()
    return json.loads(raw)


async def test_stored_bad_tuning_never_becomes_a_500(api: Api, poisoned: dict[str, str]) -> None:
    voice, entry = poisoned["voice"], poisoned["entry"]
    base = f"/v1/agents/{AGENT}/audio-cache"
    calls = [
        ("POST", f"/v1/agents/{AGENT}/tts", {"json": {"text": "A new phrase"}}),
        ("POST", f"/v1/agents/{AGENT}/tts", {"json": {"text": "Thanks for calling"}}),
        ("POST", f"/v1/agents/{AGENT}/tts", {"json": {"text": "Streamed", "stream": True}}),
        ("POST", f"/v1/agents/{AGENT}/tts", {"json": {"text": "Direct", "voice": voice}}),
        ("GET", f"{LIBRARY}/{voice}", {}),
        ("GET", LIBRARY, {}),
        ("GET", f"{LIBRARY}/{voice}/sample", {}),
        ("POST", f"{base}/{entry}/synthesize", {"json": {"text": "Preview", "config": {}}}),
        ("POST", f"{base}/warm", {"json": {"phrases": [{"text": "Warm me"}]}}),
        ("POST", f"/v1/agents/{AGENT}/duplicate", {"json": {"newAgentName": "Copy"}}),
        ("POST", f"{base}/{entry}/regenerate", {}),
    ]
    for method, url, kwargs in calls:
        r = await api.client.request(method, url, headers=api.headers, **kwargs)
        assert r.status_code == 200, (method, url, r.status_code, r.text[:300])
    # What the voice is read as: the fields the model rejects are gone.
    got = (await api.client.get(f"{LIBRARY}/{voice}", headers=api.headers)).json()
    assert got["voice"]["config"] == {}
    # The regenerate wrote the repaired config back.
    assert await stored_config(api, entries, int(entry)) == {}


async def test_a_patch_writes_the_repaired_config(api: Api, poisoned: dict[str, str]) -> None:
    voice = poisoned["voice"]
    r = await api.client.patch(f"{LIBRARY}/{voice}", json={"name": "Renamed"}, headers=api.headers)
    assert r.status_code == 200, r.text
    assert await stored_config(api, voices, voice) == {}
    r = await api.client.patch(
        f"{LIBRARY}/{voice}", json={"config": {"speed": 1.5}}, headers=api.headers
    )
    assert await stored_config(api, voices, voice) == {"speed": 1.5}


async def test_stored_repair_keeps_the_valid_fields(api: Api, poisoned: dict[str, str]) -> None:
    voice = poisoned["voice"]
    await store_config(api, voices, voice, '{"volume": 1e308, "speed": 1.5, "style": [1]}')
    got = (await api.client.get(f"{LIBRARY}/{voice}", headers=api.headers)).json()
    assert got["voice"]["config"] == {"speed": 1.5}


async def test_start_up_reports_stored_bad_tuning(
    api: Api, poisoned: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    audit = await audit_stored_tuning(api.services.db)
    assert audit.voices == [poisoned["voice"]]
    assert audit.agents == [f"acme/{AGENT}"]
    assert audit.entries == [int(poisoned["entry"])]
    # Services.start runs it: a second process on the same data logs the ids.
    other = build_services(api.services.settings, engines=[EspeakEngine()])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audiocache.tuning"):
        await other.start()
        await other.stop()
    messages = [r.getMessage() for r in caplog.records if r.name == "audiocache.tuning"]
    assert len(messages) == 1, messages
    assert poisoned["voice"] in messages[0] and poisoned["entry"] in messages[0]
    assert "1 voices" in messages[0] and "1 entries" in messages[0]


async def test_start_up_is_quiet_when_all_is_valid(
    api: Api, world: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="audiocache.tuning"):
        audit = await audit_stored_tuning(api.services.db)
    assert audit.clean and not caplog.records


# -- the command line's warm-up -----------------------------------------------------------


@pytest.mark.slow
def test_warm_cli_refuses_bad_tuning_lines(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli = [sys.executable, "-m", "audiocache"]
    made = subprocess.run(
        [
            *cli,
            "agents",
            "create",
            "--account",
            "acme",
            "--name",
            "Desk",
            "--agent-id",
            "desk",
            "--voice",
            "en-us",
            "--data-dir",
            str(data),
        ],
        capture_output=True,
    )
    assert made.returncode == 0, made.stderr
    lines = [
        '{"text": "Good line", "config": {"speed": 1.2}}',
        '{"text": "Overflow", "config": {"volume": 1e308}}',
        '{"text": "Not a number", "config": {"volume": NaN, "speed": "fast"}}',
        '{"text": "Too fast", "config": {"speed": 9}}',
    ]
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("\n".join(lines) + "\n")
    run = subprocess.run(
        [*cli, "warm", str(phrases), "--agent", "desk", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "synthesized": 1,
        "alreadyCached": 0,
        "failed": 3,
    }
    out = " ".join((run.stderr + run.stdout).split())
    assert "line 2: Invalid tuning - config.volume" in out
    assert "line 3: Invalid tuning - config.speed" in out and "config.volume" in out
    assert "line 4: Invalid tuning - config.speed" in out
    assert "Traceback" not in run.stdout + run.stderr

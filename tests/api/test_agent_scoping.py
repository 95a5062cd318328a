"""Agent ids are per account: two accounts may each own "front", every route resolves the id
through the caller's account, and another account's agent answers exactly as an unknown one."""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support import ALL_GRANTS, Api, assert_envelope, sine_wav

A_FILE = "/v1/agents/{a}/audio-cache/{e}"
Call = Callable[[Api, str, str], Any]


def _wav(api: Api, path: str) -> Any:
    headers = {**api.headers, "Content-Type": "audio/wav"}
    return api.client.patch(path, content=sine_wav(freq=277.0), headers=headers)


def _details(api: Api, path: str) -> Any:
    return api.client.put(
        path,
        files={"file": ("t.wav", sine_wav(freq=554.0), "audio/wav")},
        data={"settings": json.dumps({"text": "A studio take", "config": {}})},
        headers=api.headers,
    )


def _store(api: Api, path: str) -> Any:
    return api.client.post(
        path,
        files={"file": ("t.wav", sine_wav(freq=330.0), "audio/wav")},
        data={"settings": json.dumps({"text": "Stored by the runtime"})},
        headers=api.headers,
    )


async def _take(api: Api, path: str) -> Any:
    """A history route of one take: replace the entry's audio first, so it has one."""
    entry_path, _sep, rest = path.partition("/history/{takeId}")
    await _wav(api, entry_path + "/file")
    listed = await api.client.get(entry_path + "/history", headers=api.headers)
    take = listed.json()["takes"][0]["id"] if listed.status_code == 200 else "1"
    method = "POST" if rest == "/restore" else "GET"
    return await api.client.request(
        method, f"{entry_path}/history/{take}{rest}", headers=api.headers
    )


async def _import(api: Api, path: str) -> Any:
    """An import of the agent's own export (empty when the export is refused)."""
    exported = await api.client.get(path.replace("/import", "/export"), headers=api.headers)
    body = exported.content if exported.status_code == 200 else b""
    return await api.client.post(path, content=body, headers=api.headers)


def _takes(api: Api, path: str) -> Any:
    body = io.BytesIO()
    with zipfile.ZipFile(body, "w") as archive:
        archive.writestr("takes.csv", "file,transcript\nhello.wav,Thanks for calling\n")
        archive.writestr("hello.wav", sine_wav(freq=440.0))
    return api.client.post(path, content=body.getvalue(), headers=api.headers)


def _json(method: str, body: Any) -> Callable[[Api, str], Any]:
    return lambda api, path: api.client.request(method, path, json=body, headers=api.headers)


def _plain(method: str) -> Callable[[Api, str], Any]:
    return lambda api, path: api.client.request(method, path, headers=api.headers)


# Every operation that takes {agentId}: (method, path template, how to call it).
OPERATIONS: list[tuple[str, str, Callable[[Api, str], Any]]] = [
    ("get", "/v1/agents/{a}/audio-cache", _plain("GET")),
    ("delete", A_FILE, _plain("DELETE")),
    ("get", A_FILE + "/file", _plain("GET")),
    ("head", A_FILE + "/file", _plain("HEAD")),
    ("patch", A_FILE + "/file", _wav),
    ("put", A_FILE + "/details", _details),
    ("post", A_FILE + "/synthesize", _json("POST", {"text": "Preview", "config": {}})),
    ("post", "/v1/agents/{a}/audio-cache/bulk-delete", None),  # body needs the entry id
    ("post", A_FILE + "/regenerate", _plain("POST")),
    ("put", A_FILE + "/pin", _plain("PUT")),
    ("delete", A_FILE + "/pin", _plain("DELETE")),
    ("post", "/v1/agents/{a}/audio-cache/warm", _json("POST", {"phrases": [{"text": "Warm"}]})),
    ("post", "/v1/agents/{a}/tts", _json("POST", {"text": "Hello"})),
    ("get", "/v1/agents/{a}/audio-cache/stats", _plain("GET")),
    ("post", "/v1/agents/{a}/audio-cache/lookup", _json("POST", {"text": "Thanks for calling"})),
    (
        "post",
        "/v1/agents/{a}/audio-cache/lookup-batch",
        _json("POST", {"phrases": [{"text": "Thanks for calling"}]}),
    ),
    ("post", "/v1/agents/{a}/audio-cache/store", _store),
    ("get", "/v1/agents/{a}/cache-policy", _plain("GET")),
    ("put", "/v1/agents/{a}/cache-policy", _json("PUT", {"admission": "never"})),
    ("post", "/v1/agents/{a}/duplicate", _json("POST", {"newAgentName": "Copy"})),
    ("get", A_FILE + "/history", _plain("GET")),
    ("get", A_FILE + "/history/{takeId}/file", _take),
    ("post", A_FILE + "/history/{takeId}/restore", _take),
    ("get", "/v1/agents/{a}/audio-cache/export", _plain("GET")),
    ("post", "/v1/agents/{a}/audio-cache/import", _import),
    ("post", "/v1/agents/{a}/audio-cache/takes", _takes),
    ("delete", "/v1/agents/{a}", _plain("DELETE")),
]


def call(api: Api, op: tuple[str, str, Any], agent: str, entry: str) -> Any:
    _method, template, how = op
    path = template.replace("{a}", agent).replace("{e}", entry)
    if how is None:
        return _json("POST", {"ids": [entry]})(api, path)
    return how(api, path)


async def account(api: Api, name: str) -> Api:
    return Api(api.client, await api.new_key(ALL_GRANTS, account=name), name, api.services)


@pytest.fixture
async def accounts(api: Api) -> tuple[Api, Api]:
    """acme and globex, each owning an agent "front" (globex's made first)."""
    globex = await account(api, "globex")
    await globex.create_agent("front")
    await api.create_agent("front")
    return api, globex


def test_the_table_covers_every_route_with_an_agent_id(client: httpx.AsyncClient) -> None:
    served = {
        (method, re.sub(r"\{entryId\}", "{e}", path.replace("{agentId}", "{a}")))
        for path, item in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        if "{agentId}" in path
        for method in item
    }
    assert served == {(method, template) for method, template, _how in OPERATIONS}


def _shape(r: httpx.Response, agent: str) -> tuple[int, str | None, str | None]:
    if r.status_code < 400 or not r.content:
        return r.status_code, None, None
    body = r.json()
    return r.status_code, body["error_code"], body["error_message"].replace(agent, "<id>")


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
async def test_another_accounts_agent_answers_as_an_unknown_one(
    accounts: tuple[Api, Api], op: tuple[str, str, Any]
) -> None:
    acme, _globex = accounts
    entry = await acme.seed_entry("front", "Thanks for calling")
    initech = await account(acme, "initech")  # owns no agent at all
    taken = call(initech, op, "front", entry)
    unknown = call(initech, op, "ghost", entry)
    taken, unknown = await taken, await unknown
    assert _shape(taken, "front") == _shape(unknown, "ghost")
    assert taken.status_code == 404, taken.text


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
async def test_every_route_with_a_key_sees_only_its_accounts_front(
    accounts: tuple[Api, Api], op: tuple[str, str, Any]
) -> None:
    acme, globex = accounts
    mine = await acme.seed_entry("front", "Thanks for calling")
    theirs = await globex.seed_entry("front", "Thanks for calling")
    assert mine != theirs  # the same phrase, cached once per account's agent
    # Through "front", acme's key reaches acme's entry, never globex's.
    if "{e}" in op[1]:
        r = await call(acme, op, "front", theirs)
        assert r.status_code == 404, r.text
        if op[0] != "head":
            assert_envelope(r, 404, "NOT_FOUND")
    elif op[1].endswith("bulk-delete"):
        r = await call(acme, op, "front", theirs)
        assert r.json() == {"deleted": [], "failed": [theirs]}
    r = await call(acme, op, "front", mine)
    assert r.status_code < 300, (r.status_code, r.text[:300])
    # Whatever acme did, globex's "front" is untouched.
    listed = await globex.entries("front")
    assert [e["id"] for e in listed["entries"]] == [theirs]
    policy = await globex.client.get("/v1/agents/front/cache-policy", headers=globex.headers)
    assert policy.json()["admission"] == "always"


async def test_both_fronts_work_independently(accounts: tuple[Api, Api]) -> None:
    acme, globex = accounts
    a = await acme.seed_entry("front", "Good morning")
    g = await globex.seed_entry("front", "Good evening")
    assert [e["id"] for e in (await acme.entries("front"))["entries"]] == [a]
    assert [e["id"] for e in (await globex.entries("front"))["entries"]] == [g]
    hit = await globex.speak("front", "Good evening")
    assert hit.headers["x-audio-cache"] == "hit" and hit.headers["x-audio-cache-entry-id"] == g
    r = await acme.client.get(f"/v1/agents/front/audio-cache/{g}/file", headers=acme.headers)
    assert_envelope(r, 404, "NOT_FOUND")
    # Deleting acme's front leaves globex's.
    r = await acme.client.delete("/v1/agents/front", headers=acme.headers)
    assert r.status_code == 204
    r = await globex.client.get(f"/v1/agents/front/audio-cache/{g}/file", headers=globex.headers)
    assert r.status_code == 200
    listed = await acme.client.get("/v1/accounts/acme/agents", headers=acme.headers)
    assert listed.json() == []
    listed = await globex.client.get("/v1/accounts/globex/agents", headers=globex.headers)
    assert [x["agentId"] for x in listed.json()] == ["front"]


async def test_create_and_duplicate_onto_an_id_taken_elsewhere_behave_as_free(
    accounts: tuple[Api, Api],
) -> None:
    acme, globex = accounts
    await globex.create_agent("sales")
    await acme.seed_entry("front", "Copied phrase")
    r = await acme.client.post(
        "/v1/agents/front/duplicate",
        json={"newAgentId": "sales", "newAgentName": "Sales"},
        headers=acme.headers,
    )
    assert r.status_code == 200 and r.json()["agentId"] == "sales", r.text
    copied = await acme.entries("sales")
    assert [e["transcript"] for e in copied["entries"]] == ["Copied phrase"]
    hit = await acme.speak("sales", "Copied phrase")
    assert hit.headers["x-audio-cache"] == "hit"
    assert (await globex.entries("sales"))["totalCount"] == 0
    # Within one account an id is still taken.
    r = await acme.client.post(
        "/v1/agents/front/duplicate",
        json={"newAgentId": "sales", "newAgentName": "Again"},
        headers=acme.headers,
    )
    assert_envelope(r, 409, "CONFLICT")

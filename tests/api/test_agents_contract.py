"""The Agents operations in scope (list, create, delete, duplicate) against the contract."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import httpx
import pytest
from support import ALL_GRANTS, Api, assert_envelope

AGENTS = "/v1/accounts/acme/agents"
AGENT_FIELDS = {"accountId", "agentId", "agentName", "createdAt", "updatedAt", "branchCount"}


def agent_body(agent_id: str | None = "sales", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Sales line",
        "responseSettings": {"greeting": "Hello", "languageCode": "en-US"},
        "voiceSettings": {"voiceId": "fake:alpha"},
        **extra,
    }
    if agent_id is not None:
        body["agentId"] = agent_id
    return body


def assert_agent(response: httpx.Response, **expected: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    agent = response.json()
    assert_agent_shape(agent)
    for name, value in expected.items():
        assert agent[name] == value, (name, agent)
    return agent


def assert_agent_shape(agent: dict[str, Any]) -> None:
    assert set(agent) == AGENT_FIELDS
    for name in ("accountId", "agentId", "agentName", "createdAt", "updatedAt"):
        assert isinstance(agent[name], str)
    assert isinstance(agent["branchCount"], int | float)
    created = datetime.fromisoformat(agent["createdAt"])
    assert created.tzinfo is not None
    assert datetime.fromisoformat(agent["updatedAt"]) >= created


async def create(api: Api, body: Any, account: str = "acme") -> httpx.Response:
    return await api.client.post(f"/v1/accounts/{account}/agents", json=body, headers=api.headers)


async def duplicate(api: Api, source: str, body: Any) -> httpx.Response:
    return await api.client.post(f"/v1/agents/{source}/duplicate", json=body, headers=api.headers)


async def download(api: Api, agent: str, entry_id: str) -> httpx.Response:
    return await api.client.get(
        f"/v1/agents/{agent}/audio-cache/{entry_id}/file", headers=api.headers
    )


async def blob_files(api: Api) -> set[str]:
    """Hashes of the blobs in the store, whichever backend holds them."""
    return {blob.sha256 async for blob in api.services.blobs.iter_blobs()}


# -- list -------------------------------------------------------------------------------


async def test_list_agents_empty(api: Api) -> None:
    r = await api.client.get(AGENTS, headers=api.headers)
    assert r.status_code == 200 and r.json() == []


async def test_list_agents_shows_only_the_accounts_agents(api: Api) -> None:
    await api.create_agent("one")
    await api.create_agent("two")
    globex = Api(
        api.client, await api.new_key(ALL_GRANTS, account="globex"), "globex", api.services
    )
    await globex.create_agent("theirs")
    r = await api.client.get(AGENTS, headers=api.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    agents = r.json()
    assert isinstance(agents, list)
    for agent in agents:
        assert_agent_shape(agent)
    assert sorted(a["agentId"] for a in agents) == ["one", "two"]
    assert {a["accountId"] for a in agents} == {"acme"}


async def test_list_agents_of_another_account_is_404(api: Api) -> None:
    r = await api.client.get("/v1/accounts/globex/agents", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")


# -- create -----------------------------------------------------------------------------


async def test_create_agent(api: Api) -> None:
    agent = assert_agent(
        await create(api, agent_body()), accountId="acme", agentId="sales", agentName="Sales line"
    )
    assert agent["branchCount"] >= 1
    listed = (await api.client.get(AGENTS, headers=api.headers)).json()
    assert listed == [agent]


async def test_create_agent_minimal_body_generates_an_id(api: Api) -> None:
    body = {"name": "Bare", "responseSettings": {"greeting": "Hi"}}
    agent = assert_agent(await create(api, body), agentName="Bare")
    assert re.fullmatch(r"[a-zA-Z0-9-]+", agent["agentId"])
    other = assert_agent(await create(api, body))
    assert other["agentId"] != agent["agentId"]


async def test_create_agent_with_every_optional_part(api: Api) -> None:
    config = {
        "id": "c1",
        "features": {"x": 1},
        "createdAt": "2025-01-01",
        "createdBy": "me",
        "updatedAt": "2025-01-01",
        "updatedBy": "me",
        "active": True,
    }
    body = agent_body(llmSettings={"modelId": "gpt"}, experimentalConfig={"configs": [config]})
    assert_agent(await create(api, body), agentId="sales")


async def test_create_existing_agent_is_409(api: Api) -> None:
    assert_agent(await create(api, agent_body()))
    assert_envelope(await create(api, agent_body()), 409, "CONFLICT")


async def test_create_agent_id_taken_by_another_account_is_created(api: Api) -> None:
    # Ids are per account: another account's "sales" is neither revealed nor in the way.
    globex = Api(
        api.client, await api.new_key(ALL_GRANTS, account="globex"), "globex", api.services
    )
    await globex.create_agent("sales")
    assert_agent(await create(api, agent_body()), agentId="sales", accountId="acme")


def _without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    body = json.loads(json.dumps(body))
    target = body
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return body


BAD_CREATE_BODIES = {
    "unknown-field": agent_body(colour="blue"),
    "unknown-nested-field": agent_body(
        responseSettings={"greeting": "Hi", "languageCode": "en-US", "tone": "warm"}
    ),
    "unknown-voice-field": agent_body(voiceSettings={"voiceId": "fake:alpha", "pitch": 2}),
    "no-name": _without(agent_body(), "name"),
    "empty-name": agent_body(name=""),
    "long-name": agent_body(name="x" * 101),
    "no-response-settings": _without(agent_body(), "responseSettings"),
    "no-greeting": _without(agent_body(), "responseSettings", "greeting"),
    "empty-greeting": agent_body(responseSettings={"greeting": ""}),
    "bad-agent-id": agent_body("has spaces"),
    "slash-agent-id": agent_body("a/b"),
    "empty-voice": agent_body(voiceSettings={"voiceId": ""}),
    "no-voice-id": agent_body(voiceSettings={}),
    "name-not-string": agent_body(name=5),
    "not-an-object": [agent_body()],
}


@pytest.mark.parametrize("body", BAD_CREATE_BODIES.values(), ids=BAD_CREATE_BODIES.keys())
async def test_create_agent_bad_body_is_400(api: Api, body: Any) -> None:
    assert_envelope(await create(api, body), 400, "INVALID_REQUEST")
    assert (await api.client.get(AGENTS, headers=api.headers)).json() == []


@pytest.mark.parametrize(("content", "code"), [(b"", "EMPTY_PAYLOAD"), (b"{", "INVALID_REQUEST")])
async def test_create_agent_unparseable_body_is_400(api: Api, content: bytes, code: str) -> None:
    r = await api.client.post(
        AGENTS, content=content, headers={**api.headers, "Content-Type": "application/json"}
    )
    assert_envelope(r, 400, code)


async def test_create_agent_in_another_account_is_404(api: Api) -> None:
    assert_envelope(await create(api, agent_body(), account="globex"), 404, "NOT_FOUND")


# -- delete -----------------------------------------------------------------------------


async def test_delete_agent(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Goodbye")
    sha = (await download(api, "bot", entry_id)).headers["etag"].strip('"')
    assert sha in await blob_files(api)
    r = await api.client.delete("/v1/agents/bot", headers=api.headers)
    assert r.status_code == 204 and r.content == b""
    for response in (
        await api.client.get("/v1/agents/bot/audio-cache", headers=api.headers),
        await download(api, "bot", entry_id),
        await api.client.get("/v1/agents/bot/cache-policy", headers=api.headers),
        await api.speak("bot", "Goodbye"),
    ):
        assert_envelope(response, 404, "NOT_FOUND")
    assert (await api.client.get(AGENTS, headers=api.headers)).json() == []
    assert sha not in await blob_files(api)
    assert_envelope(await api.client.delete("/v1/agents/bot", headers=api.headers), 404)


async def test_delete_agent_keeps_blobs_shared_with_a_duplicate(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Shared audio")
    audio = (await download(api, "bot", entry_id)).content
    assert_agent(await duplicate(api, "bot", {"newAgentId": "copy", "newAgentName": "Copy"}))
    r = await api.client.delete("/v1/agents/bot", headers=api.headers)
    assert r.status_code == 204
    (copied,) = (await api.entries("copy"))["entries"]
    assert (await download(api, "copy", copied["id"])).content == audio
    hit = await api.speak("copy", "Shared audio")
    assert hit.headers["x-audio-cache"] == "hit" and hit.content == audio


async def test_recreated_agent_starts_empty(api: Api) -> None:
    await api.create_agent("bot")
    await api.seed_entry("bot", "Old audio")
    assert (await api.client.delete("/v1/agents/bot", headers=api.headers)).status_code == 204
    await api.create_agent("bot")
    assert await api.entries("bot") == {"entries": [], "totalCount": 0}


async def test_delete_unknown_agent_is_404(api: Api) -> None:
    assert_envelope(await api.client.delete("/v1/agents/nobody", headers=api.headers), 404)


# -- duplicate --------------------------------------------------------------------------


async def test_duplicate_agent_copies_entries(api: Api, fake_engine: Any) -> None:
    await api.create_agent("bot")
    phrases = ["Welcome", "Please hold", "Goodbye"]
    source_ids = [await api.seed_entry("bot", text) for text in phrases]
    await api.speak("bot", "Welcome")
    await api.services.hits.flush()
    r = await duplicate(api, "bot", {"newAgentId": "bot-2", "newAgentName": "Bot two"})
    assert_agent(r, accountId="acme", agentId="bot-2", agentName="Bot two")
    source = {e["transcript"]: e for e in (await api.entries("bot"))["entries"]}
    copies = {e["transcript"]: e for e in (await api.entries("bot-2"))["entries"]}
    assert sorted(copies) == sorted(phrases)
    assert not {e["id"] for e in copies.values()} & set(source_ids)
    for text, copy in copies.items():
        original = source[text]
        assert copy["hitCount"] == 0
        for name in ("duration", "provider", "providerVoiceId", "languageCode", "imported"):
            assert copy[name] == original[name], name
        copied_audio = (await download(api, "bot-2", copy["id"])).content
        assert copied_audio == (await download(api, "bot", original["id"])).content
    assert source["Welcome"]["hitCount"] == 1
    calls = len(fake_engine.calls)
    hit = await api.speak("bot-2", "Please hold")
    assert hit.headers["x-audio-cache"] == "hit"
    assert hit.headers["x-audio-cache-entry-id"] == copies["Please hold"]["id"]
    assert len(fake_engine.calls) == calls


async def test_duplicate_is_independent_of_its_source(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Independent")
    assert_agent(await duplicate(api, "bot", {"newAgentId": "copy", "newAgentName": "Copy"}))
    r = await api.client.delete(f"/v1/agents/bot/audio-cache/{entry_id}", headers=api.headers)
    assert r.status_code == 200
    assert (await api.entries("copy"))["totalCount"] == 1


async def test_duplicate_without_new_id_generates_one(api: Api) -> None:
    await api.create_agent("bot")
    agent = assert_agent(await duplicate(api, "bot", {"newAgentName": "Copy"}), agentName="Copy")
    assert agent["agentId"] != "bot" and re.fullmatch(r"[a-zA-Z0-9-]+", agent["agentId"])
    listed = {a["agentId"] for a in (await api.client.get(AGENTS, headers=api.headers)).json()}
    assert listed == {"bot", agent["agentId"]}


async def test_duplicate_onto_existing_id_is_409(api: Api) -> None:
    await api.create_agent("bot")
    await api.create_agent("taken")
    r = await duplicate(api, "bot", {"newAgentId": "taken", "newAgentName": "Copy"})
    assert_envelope(r, 409, "CONFLICT")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"newAgentId": "x"},
        {"newAgentName": ""},
        {"newAgentName": "x" * 101},
        {"newAgentName": "Copy", "newAgentId": "no spaces"},
        {"newAgentName": "Copy", "colour": "blue"},
        ["Copy"],
    ],
    ids=["empty", "no-name", "empty-name", "long-name", "bad-id", "unknown-field", "array"],
)
async def test_duplicate_bad_body_is_400(api: Api, body: Any) -> None:
    await api.create_agent("bot")
    assert_envelope(await duplicate(api, "bot", body), 400, "INVALID_REQUEST")


async def test_duplicate_unknown_agent_is_404(api: Api) -> None:
    r = await duplicate(api, "nobody", {"newAgentName": "Copy"})
    assert_envelope(r, 404, "NOT_FOUND")


async def test_duplicate_another_accounts_agent_is_404(api: Api) -> None:
    globex = Api(
        api.client, await api.new_key(ALL_GRANTS, account="globex"), "globex", api.services
    )
    await globex.create_agent("theirs")
    r = await duplicate(api, "theirs", {"newAgentId": "mine", "newAgentName": "Mine"})
    assert_envelope(r, 404, "NOT_FOUND")


# -- our OpenAPI ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("get", "/v1/accounts/{accountId}/agents", {"200", "401", "403", "404"}),
        ("post", "/v1/accounts/{accountId}/agents", {"200", "400", "401", "403", "404", "409"}),
        ("delete", "/v1/agents/{agentId}", {"204", "401", "403", "404"}),
        ("post", "/v1/agents/{agentId}/duplicate", {"200", "400", "401", "403", "404", "409"}),
    ],
)
async def test_our_openapi_lists_the_statuses_tested_here(
    api: Api, method: str, path: str, statuses: set[str]
) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    assert set(spec["paths"][path][method]["responses"]) == statuses

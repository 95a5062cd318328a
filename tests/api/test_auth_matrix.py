"""Who may do what: every operation by every kind of caller, and the order of the checks.

401 (no, unknown or revoked key) → 403 (the key lacks the permission) → 400 (bad input)
→ 404 (missing, or another account's: never reveal that it exists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support import ALL_GRANTS, Api, assert_envelope, sine_wav

AGENT = "bot"
PHRASE = "Thanks for calling"


@dataclass(frozen=True)
class Operation:
    name: str
    permission: str
    method: str
    path: str  # formatted with {agent} and {entry}
    success: int
    body: Callable[[], dict[str, Any]] = dict  # httpx request kwargs, built fresh per request

    def url(self, entry: str, agent: str = AGENT) -> str:
        return self.path.format(agent=agent, entry=entry)


def _wav() -> dict[str, Any]:
    return {"content": sine_wav(), "headers": {"Content-Type": "audio/wav"}}


def _details() -> dict[str, Any]:
    return {
        "files": {"file": ("take.wav", sine_wav(), "audio/wav")},
        "data": {"settings": json.dumps({"text": "A new take", "config": {}})},
    }


def _json(body: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"json": body}


ENTRY = "/v1/agents/{agent}/audio-cache/{entry}"
OPERATIONS = [
    Operation("list", "audio_cache:read", "GET", "/v1/agents/{agent}/audio-cache", 200),
    Operation("download", "audio_cache:read", "GET", ENTRY + "/file", 200),
    Operation("download-head", "audio_cache:read", "HEAD", ENTRY + "/file", 200),
    Operation(
        "preview",
        "audio_cache:read",
        "POST",
        ENTRY + "/synthesize",
        200,
        _json({"text": "Preview", "config": {}}),
    ),
    Operation(
        "tts", "audio_cache:read", "POST", "/v1/agents/{agent}/tts", 200, _json({"text": PHRASE})
    ),
    Operation("delete-entry", "audio_cache:write", "DELETE", ENTRY, 200),
    Operation(
        "bulk-delete",
        "audio_cache:write",
        "POST",
        "/v1/agents/{agent}/audio-cache/bulk-delete",
        200,
        lambda: {"json": {"ids": ["1"]}},
    ),
    Operation("replace-file", "audio_cache:write", "PATCH", ENTRY + "/file", 204, _wav),
    Operation("replace-details", "audio_cache:write", "PUT", ENTRY + "/details", 204, _details),
    Operation("agents-list", "agents:read", "GET", "/v1/accounts/acme/agents", 200),
    Operation("policy-get", "agents:read", "GET", "/v1/agents/{agent}/cache-policy", 200),
    Operation(
        "agents-create",
        "agents:write",
        "POST",
        "/v1/accounts/acme/agents",
        200,
        _json({"name": "New", "agentId": "new-agent", "responseSettings": {"greeting": "Hi"}}),
    ),
    Operation("agents-delete", "agents:write", "DELETE", "/v1/agents/{agent}", 204),
    Operation(
        "agents-duplicate",
        "agents:write",
        "POST",
        "/v1/agents/{agent}/duplicate",
        200,
        _json({"newAgentId": "copy", "newAgentName": "Copy"}),
    ),
    Operation(
        "policy-put",
        "agents:write",
        "PUT",
        "/v1/agents/{agent}/cache-policy",
        200,
        _json({"admission": "never"}),
    ),
]
ENTRY_OPERATIONS = [op for op in OPERATIONS if "{entry}" in op.path]


async def call(
    api: Api, op: Operation, key: str | None, entry: str, agent: str = AGENT
) -> httpx.Response:
    kwargs = op.body()
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["X-API-KEY"] = key
    return await api.client.request(op.method, op.url(entry, agent), headers=headers, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str, method: str) -> None:
    if method == "HEAD":  # no body to a HEAD; the status and headers still tell
        assert response.status_code == status, response.headers
        assert response.content == b""
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-polyai-correlation-id"]
    else:
        assert_envelope(response, status, code)


@pytest.fixture
async def entry_id(api: Api) -> str:
    await api.create_agent(AGENT)
    return await api.seed_entry(AGENT, PHRASE)


async def revoked_key(api: Api) -> str:
    record, key = await api.services.keys.create(api.account, set(ALL_GRANTS))
    assert await api.services.keys.revoke(record.key_id)
    return key


async def key_for(api: Api, caller: str, op: Operation) -> str | None:
    if caller == "no-key":
        return None
    if caller == "unknown-key":
        return "ack_000000000000_thisKeyWasNeverIssued"
    if caller == "revoked-key":
        return await revoked_key(api)
    if caller == "lacks-permission":
        return await api.new_key(set(ALL_GRANTS) - {op.permission})
    if caller == "other-account":
        return await api.new_key(ALL_GRANTS, account="globex")
    assert caller == "permitted"
    return await api.new_key({op.permission})


EXPECTED = {
    "no-key": (401, "UNAUTHORIZED"),
    "unknown-key": (401, "UNAUTHORIZED"),
    "revoked-key": (401, "UNAUTHORIZED"),
    "lacks-permission": (403, "FORBIDDEN"),
    "other-account": (404, "NOT_FOUND"),
    "permitted": (None, None),
}


@pytest.mark.parametrize("caller", list(EXPECTED))
@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
async def test_auth_matrix(api: Api, entry_id: str, op: Operation, caller: str) -> None:
    response = await call(api, op, await key_for(api, caller, op), entry_id)
    status, code = EXPECTED[caller]
    if status is None:
        assert response.status_code == op.success, response.text[:500]
        if op.success == 204:
            assert response.content == b""
    else:
        assert code is not None
        assert_error(response, status, code, op.method)


@pytest.mark.parametrize("op", OPERATIONS, ids=[op.name for op in OPERATIONS])
async def test_denied_calls_change_nothing(api: Api, entry_id: str, op: Operation) -> None:
    before = await api.entries(AGENT)
    policy = (await api.client.get(f"/v1/agents/{AGENT}/cache-policy", headers=api.headers)).json()
    for caller in ("no-key", "revoked-key", "lacks-permission", "other-account"):
        response = await call(api, op, await key_for(api, caller, op), entry_id)
        assert response.status_code in (401, 403, 404)
    assert await api.entries(AGENT) == before
    r = await api.client.get(f"/v1/agents/{AGENT}/cache-policy", headers=api.headers)
    assert r.json() == policy
    agents = (await api.client.get("/v1/accounts/acme/agents", headers=api.headers)).json()
    assert [a["agentId"] for a in agents] == [AGENT]


@pytest.mark.parametrize("grant", ["*", "audio_cache:*", "agents:*"])
async def test_wildcard_grants_cover_their_resource(api: Api, entry_id: str, grant: str) -> None:
    key = await api.new_key({grant})
    resource = grant.removesuffix("*")
    for op in OPERATIONS:
        if op.method not in ("GET", "HEAD"):
            continue
        response = await call(api, op, key, entry_id)
        if op.permission.startswith(resource):
            assert response.status_code == op.success, op.name
        else:
            assert_error(response, 403, "FORBIDDEN", op.method)


async def test_a_revoked_key_stops_working_at_once(api: Api, entry_id: str) -> None:
    record, key = await api.services.keys.create("acme", {"audio_cache:read"})
    list_op = OPERATIONS[0]
    assert (await call(api, list_op, key, entry_id)).status_code == 200
    await api.services.keys.revoke(record.key_id)
    assert_envelope(await call(api, list_op, key, entry_id), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("key", ["", "x" * 300, "ack_bad"], ids=["empty", "huge", "short"])
async def test_malformed_keys_are_401(api: Api, entry_id: str, key: str) -> None:
    r = await api.client.get(f"/v1/agents/{AGENT}/audio-cache", headers={"X-API-KEY": key})
    assert_envelope(r, 401, "UNAUTHORIZED")


# -- the order of the checks ------------------------------------------------------------


INVALID_REQUESTS = [
    ("PATCH", "/v1/agents/{agent}/audio-cache/abc/file", {"content": b""}),
    ("PATCH", "/v1/agents/{agent}/audio-cache/1/file", {"content": b"not a wav"}),
    ("PUT", "/v1/agents/{agent}/audio-cache/abc/details", {"content": b"garbage"}),
    ("POST", "/v1/agents/{agent}/audio-cache/abc/synthesize", {"content": b"{"}),
    ("POST", "/v1/agents/{agent}/audio-cache/bulk-delete", {"json": {"ids": []}}),
    ("GET", "/v1/agents/{agent}/audio-cache", {"params": {"limit": "0", "sort": "x:y"}}),
    ("DELETE", "/v1/agents/{agent}/audio-cache/abc", {}),
    ("GET", "/v1/agents/{agent}/audio-cache/abc/file", {}),
    ("POST", "/v1/agents/{agent}/tts", {"json": {"text": ""}}),
    ("POST", "/v1/accounts/acme/agents", {"json": {"name": ""}}),
    ("POST", "/v1/agents/{agent}/duplicate", {"json": {}}),
    ("PUT", "/v1/agents/{agent}/cache-policy", {"json": {"admission": "sometimes"}}),
]


@pytest.mark.parametrize("key", [None, "ack_000000000000_unknown"], ids=["no-key", "unknown"])
@pytest.mark.parametrize(
    ("method", "path", "kwargs"), INVALID_REQUESTS, ids=[f"{m} {p}" for m, p, _ in INVALID_REQUESTS]
)
async def test_unauthenticated_invalid_request_is_401(
    api: Api, entry_id: str, method: str, path: str, kwargs: dict[str, Any], key: str | None
) -> None:
    headers = {} if key is None else {"X-API-KEY": key}
    url = path.format(agent=AGENT)
    r = await api.client.request(method, url, headers=headers, **kwargs)
    assert_envelope(r, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=[op.name for op in ENTRY_OPERATIONS])
async def test_forbidden_key_with_non_numeric_entry_id_is_403(
    api: Api, entry_id: str, op: Operation
) -> None:
    key = await api.new_key(set(ALL_GRANTS) - {op.permission})
    assert_error(await call(api, op, key, "not-a-number"), 403, "FORBIDDEN", op.method)


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=[op.name for op in ENTRY_OPERATIONS])
async def test_other_accounts_agent_with_non_numeric_entry_id_is_400(
    api: Api, entry_id: str, op: Operation
) -> None:
    key = await api.new_key(ALL_GRANTS, account="globex")
    assert_error(await call(api, op, key, "not-a-number"), 400, "INVALID_ID", op.method)


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=[op.name for op in ENTRY_OPERATIONS])
async def test_other_accounts_agent_with_real_entry_id_is_404(
    api: Api, entry_id: str, op: Operation
) -> None:
    """Not 403, not 400: the entry exists, but the caller must not learn that."""
    key = await api.new_key(ALL_GRANTS, account="globex")
    unknown = await call(api, op, key, "999999")
    existing = await call(api, op, key, entry_id)
    assert_error(existing, 404, "NOT_FOUND", op.method)
    assert existing.status_code == unknown.status_code
    if op.method != "HEAD":
        assert existing.json()["error_message"] == unknown.json()["error_message"]


async def test_other_account_cannot_tell_which_agents_exist(api: Api, entry_id: str) -> None:
    key = await api.new_key(ALL_GRANTS, account="globex")
    headers = {"X-API-KEY": key}
    existing = await api.client.get(f"/v1/agents/{AGENT}/audio-cache", headers=headers)
    missing = await api.client.get("/v1/agents/nobody-at-all/audio-cache", headers=headers)
    assert_envelope(existing, 404, "NOT_FOUND")
    assert_envelope(missing, 404, "NOT_FOUND")
    # the message names the agent asked for, so compare it with that name swapped out
    assert existing.json()["error_message"].replace(AGENT, "?") == missing.json()[
        "error_message"
    ].replace("nobody-at-all", "?")

"""Who may do what: every operation by every kind of caller, and the order of the checks.

One table, ``OPERATIONS``, names every operationId the server publishes in /openapi.json with
the one permission it needs (None: public, such as the signed sample link); a test fails if
the two ever differ, so a new route cannot slip past the matrix. For each operation: no key,
an unknown key, a revoked key → 401; a key with every permission but that one → 403; another
account's key → 404; a key with exactly that permission → the operation's success status.

401 (no, unknown or revoked key) → 403 (the key lacks the permission) → 400 (bad input)
→ 404 (missing, or another account's: never reveal that it exists).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from support import ALL_GRANTS, Api, assert_envelope, sine_wav, tar_of

AGENT = "bot"
ACCOUNT = "acme"
PHRASE = "Thanks for calling"


@dataclass(frozen=True)
class Operation:
    """One row of the table: an operationId of the served OpenAPI and the one permission
    it needs (None: public, no key needed). The rest is how to call it successfully."""

    operation_id: str
    permission: str | None
    method: str
    path: str  # as the OpenAPI writes it: {agentId}, {entryId}, {takeId}, {accountId}, …
    success: int
    body: Callable[[], dict[str, Any]] = dict  # httpx request kwargs, built fresh per request

    def url(self, params: dict[str, str]) -> str:
        return self.path.format(**{k: params[k] for k in PATH_PARAMETERS.findall(self.path)})


PATH_PARAMETERS = re.compile(r"{(\w+)}")


def _wav() -> dict[str, Any]:
    return {"content": sine_wav(), "headers": {"Content-Type": "audio/wav"}}


def _details() -> dict[str, Any]:
    return {
        "files": {"file": ("take.wav", sine_wav(), "audio/wav")},
        "data": {"settings": json.dumps({"text": "A new take", "config": {}})},
    }


def _archive() -> dict[str, Any]:
    """An export of an agent with nothing cached: the smallest archive an import takes."""
    manifest = {
        "format": "audiocache-export",
        "version": 1,
        "agent": {"agentId": "elsewhere"},
        "entries": [],
    }
    return {"content": tar_of({"manifest.json": json.dumps(manifest).encode()})}


def _takes() -> dict[str, Any]:
    mapping = f"file,transcript\ntake.wav,{PHRASE}\n".encode()
    return {"content": tar_of({"takes.csv": mapping, "take.wav": sine_wav()})}


def _store() -> dict[str, Any]:
    return {
        "files": {"file": ("take.wav", sine_wav(), "audio/wav")},
        "data": {"settings": json.dumps({"text": "Stored by the runtime"})},
    }


def _json(body: Any) -> Callable[[], dict[str, Any]]:
    return lambda: {"json": body}


CACHE = "/v1/agents/{agentId}/audio-cache"
ENTRY = CACHE + "/{entryId}"
LIBRARY = "/v1/accounts/{accountId}/voice-library"
READ, WRITE = "audio_cache:read", "audio_cache:write"
AGENTS_READ, AGENTS_WRITE = "agents:read", "agents:write"
VOICES_READ, VOICES_WRITE = "voice_library:read", "voice_library:write"
ANY_KEY = "any key"  # a valid key of any account, granting anything or nothing
NEW_VOICE = {"name": "Robot", "provider": "espeak", "providerVoiceId": "en-gb", "config": {}}

OPERATIONS = [
    # the contract's audio cache
    Operation("listAudioCacheEntries", READ, "GET", CACHE, 200),
    Operation("downloadAudioCacheFile", READ, "GET", ENTRY + "/file", 200),
    Operation("headAudioCacheFile", READ, "HEAD", ENTRY + "/file", 200),
    Operation(
        "synthesizeAudioCachePreview",
        READ,
        "POST",
        ENTRY + "/synthesize",
        200,
        _json({"text": "Preview", "config": {}}),
    ),
    Operation("deleteAudioCacheEntry", WRITE, "DELETE", ENTRY, 200),
    Operation(
        "bulkDeleteAudioCacheEntries",
        WRITE,
        "POST",
        CACHE + "/bulk-delete",
        200,
        _json({"ids": ["1"]}),
    ),
    Operation("replaceAudioCacheFile", WRITE, "PATCH", ENTRY + "/file", 204, _wav),
    Operation("replaceAudioCacheDetails", WRITE, "PUT", ENTRY + "/details", 204, _details),
    # audiocache's curation and runtime path
    Operation("regenerateAudioCacheEntry", WRITE, "POST", ENTRY + "/regenerate", 200),
    Operation("pinAudioCacheEntry", WRITE, "PUT", ENTRY + "/pin", 200),
    Operation("unpinAudioCacheEntry", WRITE, "DELETE", ENTRY + "/pin", 200),
    Operation(
        "warmAudioCache", WRITE, "POST", CACHE + "/warm", 200, _json({"phrases": [{"text": "Hi"}]})
    ),
    Operation("getAudioCacheStats", READ, "GET", CACHE + "/stats", 200),
    Operation("speak", READ, "POST", "/v1/agents/{agentId}/tts", 200, _json({"text": PHRASE})),
    Operation("lookupAudioCache", READ, "POST", CACHE + "/lookup", 200, _json({"text": PHRASE})),
    Operation(
        "lookupAudioCacheBatch",
        READ,
        "POST",
        CACHE + "/lookup-batch",
        200,
        _json({"phrases": [{"text": PHRASE}]}),
    ),
    Operation("storeAudioCache", WRITE, "POST", CACHE + "/store", 200, _store),
    # take history
    Operation("listAudioCacheEntryTakes", READ, "GET", ENTRY + "/history", 200),
    Operation("downloadAudioCacheEntryTake", READ, "GET", ENTRY + "/history/{takeId}/file", 200),
    Operation(
        "restoreAudioCacheEntryTake", WRITE, "POST", ENTRY + "/history/{takeId}/restore", 200
    ),
    # agents
    Operation("listAgents", AGENTS_READ, "GET", "/v1/accounts/{accountId}/agents", 200),
    Operation(
        "createAgent",
        AGENTS_WRITE,
        "POST",
        "/v1/accounts/{accountId}/agents",
        200,
        _json({"name": "New", "agentId": "new-agent", "responseSettings": {"greeting": "Hi"}}),
    ),
    Operation("deleteAgent", AGENTS_WRITE, "DELETE", "/v1/agents/{agentId}", 204),
    Operation(
        "duplicateAgent",
        AGENTS_WRITE,
        "POST",
        "/v1/agents/{agentId}/duplicate",
        200,
        _json({"newAgentId": "copy", "newAgentName": "Copy"}),
    ),
    Operation("getCachePolicy", AGENTS_READ, "GET", "/v1/agents/{agentId}/cache-policy", 200),
    Operation(
        "setCachePolicy",
        AGENTS_WRITE,
        "PUT",
        "/v1/agents/{agentId}/cache-policy",
        200,
        _json({"admission": "never"}),
    ),
    # the account voice library
    Operation("listVoices", VOICES_READ, "GET", LIBRARY, 200),
    Operation("createVoice", VOICES_WRITE, "POST", LIBRARY, 200, _json(NEW_VOICE)),
    Operation("getVoice", VOICES_READ, "GET", LIBRARY + "/{voiceId}", 200),
    Operation(
        "updateVoice", VOICES_WRITE, "PATCH", LIBRARY + "/{voiceId}", 200, _json({"name": "New"})
    ),
    Operation("getVoiceSample", VOICES_READ, "GET", LIBRARY + "/{voiceId}/sample", 200),
    # the signed sample link: the token is the credential, no key is asked for
    Operation("downloadVoiceSample", None, "GET", "/v1/voice-samples/{token}", 200),
    Operation("headDownloadVoiceSample", None, "HEAD", "/v1/voice-samples/{token}", 200),
    # export, import, bulk takes
    Operation("exportAudioCache", READ, "GET", CACHE + "/export", 200),
    Operation("importAudioCache", WRITE, "POST", CACHE + "/import", 200, _archive),
    Operation("uploadAudioCacheTakes", WRITE, "POST", CACHE + "/takes", 200, _takes),
    # the account's audit log: an admin key (grant '*') only
    Operation("listAuditLog", "*", "GET", "/v1/accounts/{accountId}/audit-log", 200),
    # operations: probes and the Prometheus scrape (open unless a metrics token is set)
    Operation("getHealth", None, "GET", "/healthz", 200),
    Operation("getReadiness", None, "GET", "/readyz", 200),
    Operation("getMetrics", None, "GET", "/metrics", 200),
    # any valid key, whatever it grants: what the key is (the web page's sign-in)
    Operation("getWhoami", ANY_KEY, "GET", "/v1/whoami", 200),
]
KEYED = [op for op in OPERATIONS if op.permission not in (None, ANY_KEY)]
ANY_KEYED = [op for op in OPERATIONS if op.permission == ANY_KEY]
PUBLIC = [op for op in OPERATIONS if op.permission is None]
ENTRY_OPERATIONS = [op for op in KEYED if "{entryId}" in op.path]
# Served routes the OpenAPI leaves out on purpose; each is public.
# The web page: its shell and the redirect to it carry no data (the page calls the API with
# the browser's key); static files are a mount, not a route.
UNLISTED_PUBLIC: dict[tuple[str, str], int] = {
    ("GET", "/"): 307,
    ("GET", "/ui/"): 200,
    # the OpenAPI's two browsable views (their assets are a mount)
    ("GET", "/redoc"): 200,
}
FRAMEWORK_ROUTES = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}


def _served_routes(routes: list[Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, also inside the ``_IncludedRouter`` wrappers newer
    FastAPI releases put in ``app.routes`` for each included router."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for context in contexts():
                for method in context.methods or ():
                    yield method, context.path
        elif isinstance(getattr(route, "path", None), str) and getattr(route, "methods", None):
            for method in route.methods:
                yield method, route.path


def ids(ops: list[Operation]) -> list[str]:
    return [op.operation_id for op in ops]


async def call(api: Api, op: Operation, key: str | None, params: dict[str, str]) -> httpx.Response:
    if "{token}" in op.path:
        await sample_token(api, params)
    kwargs = op.body()
    headers = kwargs.pop("headers", {})
    if key is not None:
        headers["X-API-KEY"] = key
    return await api.client.request(op.method, op.url(params), headers=headers, **kwargs)


def assert_error(response: httpx.Response, status: int, code: str, method: str) -> None:
    if method == "HEAD":  # no body to a HEAD; the status and headers still tell
        assert response.status_code == status, response.headers
        assert response.content == b""
        assert response.headers["content-type"].startswith("application/json")
        assert response.headers["x-polyai-correlation-id"]
    else:
        assert_envelope(response, status, code)


@pytest.fixture
async def params(api: Api) -> dict[str, str]:
    """Real ids for the path parameters: an agent with one entry (replaced once, so it has
    an earlier take), and a library voice."""
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, PHRASE)
    r = await api.client.patch(
        f"/v1/agents/{AGENT}/audio-cache/{entry}/file",
        content=sine_wav(freq=300.0),
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204, r.text
    r = await api.client.get(f"/v1/agents/{AGENT}/audio-cache/{entry}/history", headers=api.headers)
    take = r.json()["takes"][0]["id"]
    r = await api.client.post(
        f"/v1/accounts/{ACCOUNT}/voice-library",
        json={**NEW_VOICE, "providerVoiceId": "en-us"},
        headers=api.headers,
    )
    assert r.status_code == 200, r.text
    voice = r.json()["voice"]["id"]
    return {
        "agentId": AGENT,
        "entryId": entry,
        "takeId": take,
        "accountId": ACCOUNT,
        "voiceId": voice,
    }


async def sample_token(api: Api, params: dict[str, str]) -> str:
    """A signed link to the voice's sample (made when an operation needs one: it costs a
    synthesis)."""
    if "token" not in params:
        voice = await api.services.voices.get(ACCOUNT, params["voiceId"])
        params["token"] = (await api.services.voices.sample(voice)).url_path.rsplit("/", 1)[1]
    return params["token"]


def with_entry(params: dict[str, str], entry: str) -> dict[str, str]:
    return {**params, "entryId": entry}


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
    if caller == "other-account":  # every permission, the admin grant too
        return await api.new_key({*ALL_GRANTS, "*"}, account="globex")
    assert caller == "permitted"
    assert op.permission is not None
    return await api.new_key({op.permission})  # exactly that permission, nothing else


EXPECTED = {
    "no-key": (401, "UNAUTHORIZED"),
    "unknown-key": (401, "UNAUTHORIZED"),
    "revoked-key": (401, "UNAUTHORIZED"),
    "lacks-permission": (403, "FORBIDDEN"),
    "other-account": (404, "NOT_FOUND"),
    "permitted": (None, None),
}


# -- the table is the served API -------------------------------------------------------------


async def served_operations(api: Api) -> dict[str, tuple[str, str, dict[str, Any]]]:
    spec = (await api.client.get("/openapi.json")).json()
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation["operationId"] not in found, operation["operationId"]
            found[operation["operationId"]] = (method.upper(), path, operation)
    return found


# Operations of another API's shape (Bearer key, that API's error body): their own matrix is
# in the named test module.
OWN_MATRIX = {"createSpeech": "test_openai_speech.py"}


async def test_the_table_covers_every_served_operation(api: Api) -> None:
    served = await served_operations(api)
    assert set(ids(OPERATIONS)) == set(served) - set(OWN_MATRIX)
    assert len(ids(OPERATIONS)) == len(set(ids(OPERATIONS)))
    for op in OPERATIONS:
        method, path, operation = served[op.operation_id]
        assert (op.method, op.path) == (method, path), op.operation_id
        # what the spec promises: a key (401/403 documented) exactly when the table says so
        needs_key = bool(operation.get("security"))
        assert needs_key == (op.permission is not None), op.operation_id
        if needs_key:
            assert "401" in operation["responses"], op.operation_id
            if op.permission != ANY_KEY:
                assert "403" in operation["responses"], op.operation_id


async def test_routes_outside_the_openapi_are_public_on_purpose(api: Api) -> None:
    app = api.client.app  # type: ignore[attr-defined]
    documented = {(m, p) for m, p, _ in (await served_operations(api)).values()}
    unlisted = set()
    served = list(_served_routes(app.routes))
    assert len(served) > len(documented) // 2, "the routes were not enumerated"
    for method, path in served:
        if (method, path) not in documented and path not in FRAMEWORK_ROUTES:
            unlisted.add((method, path))
    assert unlisted == set(UNLISTED_PUBLIC)
    for (method, path), status in UNLISTED_PUBLIC.items():
        assert (await api.client.request(method, path)).status_code == status


# -- every operation by every kind of caller ------------------------------------------------


@pytest.mark.parametrize("caller", list(EXPECTED))
@pytest.mark.parametrize("op", KEYED, ids=ids(KEYED))
async def test_auth_matrix(api: Api, params: dict[str, str], op: Operation, caller: str) -> None:
    response = await call(api, op, await key_for(api, caller, op), params)
    status, code = EXPECTED[caller]
    if status is None:
        assert response.status_code == op.success, response.text[:500]
        if op.success == 204:
            assert response.content == b""
    else:
        assert code is not None
        assert_error(response, status, code, op.method)


@pytest.mark.parametrize("caller", ["no-key", "unknown-key", "revoked-key", "other-account"])
@pytest.mark.parametrize("op", PUBLIC, ids=ids(PUBLIC))
async def test_public_operations_need_no_key(
    api: Api, params: dict[str, str], op: Operation, caller: str
) -> None:
    """Marked public in the table: whatever key comes along (none, unknown, another
    account's) is neither asked for nor held against the caller."""
    response = await call(api, op, await key_for(api, caller, op), params)
    assert response.status_code == op.success, response.text[:300]


@pytest.mark.parametrize("caller", ["no-key", "unknown-key", "revoked-key"])
@pytest.mark.parametrize("op", ANY_KEYED, ids=ids(ANY_KEYED))
async def test_any_key_operations_refuse_no_valid_key(
    api: Api, params: dict[str, str], op: Operation, caller: str
) -> None:
    response = await call(api, op, await key_for(api, caller, op), params)
    assert_error(response, 401, "UNAUTHORIZED", op.method)


@pytest.mark.parametrize(
    ("account", "grants"),
    [("acme", set()), ("acme", {"audio_cache:read"}), ("globex", set(ALL_GRANTS)), ("acme", {"*"})],
    ids=["no-grant", "one-grant", "other-account", "wildcard"],
)
async def test_whoami_tells_any_key_its_own_account_key_id_and_scopes(
    api: Api, account: str, grants: set[str]
) -> None:
    record, key = await api.services.keys.create(account, grants)
    r = await api.client.get("/v1/whoami", headers={"X-API-KEY": key})
    assert r.status_code == 200, r.text
    assert r.json() == {
        "accountId": account,
        "keyId": record.key_id,
        "scopes": sorted(grants),
    }
    assert key not in r.text


async def state(api: Api) -> dict[str, Any]:
    """What a refused call must leave exactly as it was."""
    library = f"/v1/accounts/{ACCOUNT}/voice-library"
    return {
        "entries": await api.entries(AGENT),
        "policy": (
            await api.client.get(f"/v1/agents/{AGENT}/cache-policy", headers=api.headers)
        ).json(),
        "agents": (
            await api.client.get(f"/v1/accounts/{ACCOUNT}/agents", headers=api.headers)
        ).json(),
        "voices": (await api.client.get(library, headers=api.headers)).json(),
    }


@pytest.mark.parametrize("op", KEYED, ids=ids(KEYED))
async def test_denied_calls_change_nothing(api: Api, params: dict[str, str], op: Operation) -> None:
    before = await state(api)
    for caller in ("no-key", "revoked-key", "lacks-permission", "other-account"):
        response = await call(api, op, await key_for(api, caller, op), params)
        assert response.status_code in (401, 403, 404)
    assert await state(api) == before


@pytest.mark.parametrize("grant", ["*", "audio_cache:*", "agents:*", "voice_library:*"])
async def test_wildcard_grants_cover_their_resource(
    api: Api, params: dict[str, str], grant: str
) -> None:
    key = await api.new_key({grant})
    resource = grant.removesuffix("*")
    for op in KEYED:
        if op.method not in ("GET", "HEAD"):
            continue
        assert op.permission is not None
        response = await call(api, op, key, params)
        if op.permission.startswith(resource):
            assert response.status_code == op.success, op.operation_id
        else:
            assert_error(response, 403, "FORBIDDEN", op.method)


async def test_a_revoked_key_stops_working_at_once(api: Api, params: dict[str, str]) -> None:
    record, key = await api.services.keys.create("acme", {"audio_cache:read"})
    list_op = OPERATIONS[0]
    assert (await call(api, list_op, key, params)).status_code == 200
    await api.services.keys.revoke(record.key_id)
    assert_envelope(await call(api, list_op, key, params), 401, "UNAUTHORIZED")


@pytest.mark.parametrize("key", ["", "x" * 300, "ack_bad"], ids=["empty", "huge", "short"])
async def test_malformed_keys_are_401(api: Api, params: dict[str, str], key: str) -> None:
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
    api: Api,
    params: dict[str, str],
    method: str,
    path: str,
    kwargs: dict[str, Any],
    key: str | None,
) -> None:
    headers = {} if key is None else {"X-API-KEY": key}
    url = path.format(agent=AGENT)
    r = await api.client.request(method, url, headers=headers, **kwargs)
    assert_envelope(r, 401, "UNAUTHORIZED")


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=ids(ENTRY_OPERATIONS))
async def test_forbidden_key_with_non_numeric_entry_id_is_403(
    api: Api, params: dict[str, str], op: Operation
) -> None:
    key = await api.new_key(set(ALL_GRANTS) - {op.permission})
    response = await call(api, op, key, with_entry(params, "not-a-number"))
    assert_error(response, 403, "FORBIDDEN", op.method)


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=ids(ENTRY_OPERATIONS))
async def test_other_accounts_agent_with_non_numeric_entry_id_is_400(
    api: Api, params: dict[str, str], op: Operation
) -> None:
    key = await api.new_key(ALL_GRANTS, account="globex")
    response = await call(api, op, key, with_entry(params, "not-a-number"))
    assert_error(response, 400, "INVALID_ID", op.method)


@pytest.mark.parametrize("op", ENTRY_OPERATIONS, ids=ids(ENTRY_OPERATIONS))
async def test_other_accounts_agent_with_real_entry_id_is_404(
    api: Api, params: dict[str, str], op: Operation
) -> None:
    """Not 403, not 400: the entry exists, but the caller must not learn that."""
    key = await api.new_key(ALL_GRANTS, account="globex")
    unknown = await call(api, op, key, with_entry(params, "999999"))
    existing = await call(api, op, key, params)
    assert_error(existing, 404, "NOT_FOUND", op.method)
    assert existing.status_code == unknown.status_code
    if op.method != "HEAD":
        assert existing.json()["error_message"] == unknown.json()["error_message"]


async def test_other_account_cannot_tell_which_agents_exist(
    api: Api, params: dict[str, str]
) -> None:
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

"""The audit log: a known sequence of writes gives exactly its events, newest first; the
filters and paging; retention by a controllable clock; the bounded, batched writer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from support import Api, assert_envelope, sine_wav

from audiocache.cache.audit import AuditLog
from audiocache.errors import StorageUnavailable
from audiocache.models import AuditEvent, AuditQuery
from audiocache.storage.audit_repo import AuditRepository

AGENT = "bot"
BASE = f"/v1/agents/{AGENT}/audio-cache"
LOG = "/v1/accounts/acme/audit-log"
T0 = datetime(2026, 3, 1, 12, 0, 0)


@pytest.fixture(autouse=True)
async def no_background_task(api: Api) -> None:
    """The app's own audit task sweeps by the real clock; these tests turn clocks and write
    dated events, so it is stopped first (recording and reading need no task)."""
    await api.services.audit.stop()


async def _admin(api: Api) -> dict[str, str]:
    return {"X-API-KEY": await api.new_key({"*"})}


async def _key_id(api: Api, key: str) -> str:
    return (await api.services.authenticator.authenticate(key)).key_id


async def _log(api: Api, headers: dict[str, str], **params: object) -> dict:
    r = await api.client.get(LOG, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def _ticking(start: datetime) -> Iterator[datetime]:
    """A clock that moves one minute per event."""
    n = 0
    while True:
        yield start + timedelta(minutes=n)
        n += 1


async def test_a_known_sequence_of_writes_is_logged_exactly(api: Api) -> None:
    h = api.headers
    me = await _key_id(api, api.key)
    reader = await api.new_key({"audio_cache:read"})
    await api.create_agent(AGENT)  # createAgent, then setCachePolicy
    entry = await api.seed_entry(AGENT, "Hello there")  # the runtime path: a read, not logged
    assert (await api.client.get(BASE, headers=h)).status_code == 200  # a read: not logged
    r = await api.client.patch(
        f"{BASE}/{entry}/file",
        content=sine_wav(),
        headers={**h, "Content-Type": "audio/wav", "X-PolyAI-Correlation-Id": "corr-replace"},
    )
    assert r.status_code == 204
    assert (await api.client.put(f"{BASE}/{entry}/pin", headers=h)).status_code == 200
    assert (await api.client.delete(f"{BASE}/999999", headers=h)).status_code == 404
    r = await api.client.delete(f"{BASE}/{entry}", headers={"X-API-KEY": reader})
    assert r.status_code == 403  # refused: logged, with the refused key
    assert (await api.client.delete(f"{BASE}/{entry}")).status_code == 401  # no key: not
    assert (await api.client.delete(f"{BASE}/{entry}", headers=h)).status_code == 200

    body = await _log(api, await _admin(api))
    events = body["events"]
    assert body["totalCount"] == 7 == len(events)
    assert [
        (e["operation"], e["method"], e["agentId"], e["entryId"], e["status"], e["keyId"])
        for e in events
    ] == [
        ("deleteAudioCacheEntry", "DELETE", AGENT, entry, 200, me),
        ("deleteAudioCacheEntry", "DELETE", AGENT, entry, 403, await _key_id(api, reader)),
        ("deleteAudioCacheEntry", "DELETE", AGENT, "999999", 404, me),
        ("pinAudioCacheEntry", "PUT", AGENT, entry, 200, me),
        ("replaceAudioCacheFile", "PATCH", AGENT, entry, 204, me),
        ("setCachePolicy", "PUT", AGENT, None, 200, me),
        ("createAgent", "POST", AGENT, None, 200, me),  # the new agent, from the body
    ]
    replace = events[4]
    assert replace["route"] == "/v1/agents/{agentId}/audio-cache/{entryId}/file"
    assert replace["correlationId"] == "corr-replace"
    assert replace["address"] == "127.0.0.1"  # the in-process transport's peer
    assert datetime.fromisoformat(replace["at"]).tzinfo is not None
    times = [datetime.fromisoformat(e["at"]) for e in events]
    assert times == sorted(times, reverse=True)


async def test_restore_and_other_resources_writes_are_logged(api: Api) -> None:
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Take one")
    h = api.headers
    r = await api.client.patch(
        f"{BASE}/{entry}/file", content=sine_wav(), headers={**h, "Content-Type": "audio/wav"}
    )
    assert r.status_code == 204
    take = (await api.client.get(f"{BASE}/{entry}/history", headers=h)).json()["takes"][0]["id"]
    r = await api.client.post(f"{BASE}/{entry}/history/{take}/restore", headers=h)
    assert r.status_code == 200
    voice = {"name": "Robot", "provider": "espeak", "providerVoiceId": "en-gb", "config": {}}
    r = await api.client.post("/v1/accounts/acme/voice-library", json=voice, headers=h)
    assert r.status_code == 200
    voice_id = r.json()["voice"]["id"]
    r = await api.client.patch(
        f"/v1/accounts/acme/voice-library/{voice_id}", json={"name": "R2"}, headers=h
    )
    assert r.status_code == 200
    events = (await _log(api, await _admin(api), limit=4))["events"]
    assert [(e["operation"], e["entryId"], e["targetId"]) for e in events] == [
        ("updateVoice", None, voice_id),
        ("createVoice", None, None),
        ("restoreAudioCacheEntryTake", entry, take),
        ("replaceAudioCacheFile", entry, None),
    ]


async def test_ids_from_the_body_or_answer_are_logged(api: Api) -> None:
    """createAgent names its agent in its body (or answer, when generated) and a bulk
    delete its entries: the events record them (a bulk delete's, at most 20, the removed)."""
    h = api.headers
    await api.create_agent(AGENT)
    agents = "/v1/accounts/acme/agents"
    again = {"name": "Again", "agentId": AGENT, "responseSettings": {"greeting": "Hi"}}
    assert (await api.client.post(agents, json=again, headers=h)).status_code == 409
    unnamed = {"name": "Unnamed", "responseSettings": {"greeting": "Hi"}}
    r = await api.client.post(agents, json=unnamed, headers=h)
    assert r.status_code == 200, r.text
    generated = r.json()["agentId"]
    made = [await api.seed_entry(AGENT, f"Line number {n}") for n in range(20)]
    asked = [made[3], f"00{made[1]}", "999999", "not-an-id", *made[5:]]  # 19 given
    r = await api.client.post(f"{BASE}/bulk-delete", json={"ids": asked}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["failed"] == ["999999", "not-an-id"]
    r = await api.client.post(f"{BASE}/bulk-delete", json={"ids": made[:1] * 20}, headers=h)
    assert r.json()["deleted"] == [made[0]]
    r = await api.client.post(f"{BASE}/bulk-delete", json={"ids": ["424242"]}, headers=h)
    assert r.json()["failed"] == ["424242"]

    events = (await _log(api, await _admin(api), limit=7))["events"]
    assert [(e["operation"], e["agentId"], e["status"]) for e in events] == [
        ("bulkDeleteAudioCacheEntries", AGENT, 200),
        ("bulkDeleteAudioCacheEntries", AGENT, 200),
        ("bulkDeleteAudioCacheEntries", AGENT, 200),
        ("createAgent", generated, 200),  # from the answer
        ("createAgent", AGENT, 409),  # the one it was asked to make
        ("setCachePolicy", AGENT, 200),
        ("createAgent", AGENT, 200),
    ]
    removed = sorted([made[1], made[3], *made[5:]], key=int)  # as numbers, sorted
    assert [e["entryIds"] for e in events[:3]] == [[], [made[0]], removed]
    assert len(removed) == 17 and {e["entryId"] for e in events} == {None}
    assert all(e["entryIds"] == [] for e in events[3:])


async def test_duplicate_agent_logs_its_copy_as_the_target(api: Api) -> None:
    """duplicateAgent's path names the source agent; the copy (named in the body, or
    generated and in the answer) is the event's targetId, the one asked for when refused."""
    h = api.headers
    await api.create_agent(AGENT)
    dup = f"/v1/agents/{AGENT}/duplicate"
    named = {"newAgentId": "copy", "newAgentName": "Copy"}
    assert (await api.client.post(dup, json=named, headers=h)).status_code == 200
    assert (await api.client.post(dup, json=named, headers=h)).status_code == 409
    r = await api.client.post(dup, json={"newAgentName": "Unnamed"}, headers=h)
    assert r.status_code == 200, r.text
    generated = r.json()["agentId"]
    assert generated not in (AGENT, "copy")

    events = (await _log(api, await _admin(api), operation="duplicateAgent"))["events"]
    assert [(e["agentId"], e["targetId"], e["status"]) for e in events] == [
        (AGENT, generated, 200),  # from the answer
        (AGENT, "copy", 409),  # the one it was asked to make
        (AGENT, "copy", 200),
    ]


async def test_filters_and_paging(api: Api) -> None:
    services = api.services
    clock = _ticking(T0)
    services.audit.clock = lambda: next(clock)
    await api.create_agent(AGENT)  # T0 createAgent, T0+1 setCachePolicy
    entry = await api.seed_entry(AGENT, "Filter me")
    for _ in range(3):  # T0+2, +3, +4
        assert (await api.client.put(f"{BASE}/{entry}/pin", headers=api.headers)).status_code == 200
    admin = await _admin(api)

    pins = await _log(api, admin, operation="pinAudioCacheEntry")
    assert pins["totalCount"] == 3
    assert {e["operation"] for e in pins["events"]} == {"pinAudioCacheEntry"}
    assert (await _log(api, admin, operation="deleteAgent")) == {"events": [], "totalCount": 0}

    window = await _log(
        api,
        admin,
        **{"from": (T0 + timedelta(minutes=1)).isoformat(), "to": "2026-03-01T12:03:00Z"},
    )  # from inclusive, to exclusive; a zone is converted, none means UTC
    assert [e["operation"] for e in window["events"]] == [
        "pinAudioCacheEntry",
        "setCachePolicy",
    ]
    assert [e["at"] for e in window["events"]] == [
        "2026-03-01T12:02:00Z",
        "2026-03-01T12:01:00Z",
    ]
    shifted = await _log(api, admin, **{"from": "2026-03-01T13:03:00+01:00"})
    assert shifted["totalCount"] == 2

    first = await _log(api, admin, limit=2)
    second = await _log(api, admin, limit=2, offset=2)
    last = await _log(api, admin, limit=2, offset=4)
    assert first["totalCount"] == second["totalCount"] == last["totalCount"] == 5
    pages = [e["id"] for page in (first, second, last) for e in page["events"]]
    assert len(pages) == len(set(pages)) == 5
    assert [e["operation"] for e in last["events"]] == ["createAgent"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 201},
        {"offset": -1},
        {"operation": "not an operation"},
        {"from": "yesterday"},
        {"from": "2026-03-02T00:00:00", "to": "2026-03-01T00:00:00"},
    ],
    ids=["limit-0", "limit-201", "offset", "operation", "from", "from-after-to"],
)
async def test_bad_queries_are_400_in_the_envelope(api: Api, params: dict) -> None:
    r = await api.client.get(LOG, params=params, headers=await _admin(api))
    assert_envelope(r, 400)


async def test_the_log_is_the_accounts_own_and_needs_an_admin_key(api: Api) -> None:
    await api.create_agent(AGENT)
    globex = await api.new_key({"*"}, account="globex")
    r = await api.client.get(LOG, headers={"X-API-KEY": globex})
    assert_envelope(r, 404, "NOT_FOUND")
    theirs = await api.client.get("/v1/accounts/globex/audit-log", headers={"X-API-KEY": globex})
    assert theirs.status_code == 200 and theirs.json()["totalCount"] == 0
    assert_envelope(await api.client.get(LOG, headers=api.headers), 403, "FORBIDDEN")


async def test_retention_sweep_deletes_what_is_older_than_the_setting(api: Api) -> None:
    services = api.services
    audit = services.audit
    assert audit.retention == timedelta(days=90)
    now = datetime(2026, 6, 1)
    ages = [120, 91, 90, 30, 0]  # days
    await audit.repo.add([_event(now - timedelta(days=d), f"op{d}") for d in ages])
    audit.clock = lambda: now + timedelta(seconds=1)
    audit.sweep_batch = 1  # one row per transaction: the loop goes on until none is left
    assert await audit.sweep() == 3
    left, total = await audit.page("acme", AuditQuery())
    assert total == 2 and [e.operation for e in left] == ["op0", "op30"]
    assert await audit.sweep() == 0


async def test_a_full_queue_is_written_by_the_request_that_fills_it(api: Api) -> None:
    services = api.services
    repo = AuditRepository(services.db)
    audit = AuditLog(repo, flush_seconds=3600, max_pending=3)
    for n in range(2):
        await audit.record(_event(T0, f"op{n}"))
    assert audit.pending() == 2
    assert (await repo.page("acme", AuditQuery()))[1] == 0  # nothing written yet
    await audit.record(_event(T0, "op2"))
    assert audit.pending() == 0
    assert (await repo.page("acme", AuditQuery()))[1] == 3


class FailingRepository(AuditRepository):
    """A database that refuses writes (as a full or lost one does)."""

    async def add(self, events: object) -> None:
        raise StorageUnavailable("metadata database unavailable")


async def test_a_failed_write_keeps_events_within_the_bound(api: Api) -> None:
    audit = AuditLog(FailingRepository(api.services.db), max_pending=3)
    for n in range(2):
        await audit.record(_event(T0, f"op{n}"))
    with pytest.raises(StorageUnavailable):
        await audit.record(_event(T0, "op2"))  # fills the queue: the write fails
    assert audit.pending() == 3 and audit.dropped == 0
    with pytest.raises(StorageUnavailable):
        await audit.record(_event(T0, "op3"))
    assert audit.pending() == 3 and audit.dropped == 1  # the oldest went, and is counted
    assert [e.operation for e in audit._pending] == ["op1", "op2", "op3"]


def _event(at: datetime, operation: str) -> AuditEvent:
    return AuditEvent(
        at=at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at,
        account_id="acme",
        key_id="k1",
        operation=operation,
        method="POST",
        route="/x",
        status=200,
        correlation_id="c",
    )


async def test_a_failing_audit_write_never_fails_the_request(api: Api) -> None:
    audit = api.services.audit
    await api.create_agent(AGENT)
    entry = await api.seed_entry(AGENT, "Still served")
    working = audit.repo
    audit.repo = FailingRepository(api.services.db)
    audit.max_pending = 1  # every event is written at once, and that write fails
    r = await api.client.put(f"{BASE}/{entry}/pin", headers=api.headers)
    assert r.status_code == 200, r.text
    assert audit.pending() == 1  # kept for the next flush
    audit.repo = working
    events = (await _log(api, await _admin(api), operation="pinAudioCacheEntry"))["events"]
    assert [(e["entryId"], e["status"]) for e in events] == [(entry, 200)]


async def test_the_background_task_sweeps_at_start(api: Api) -> None:
    repo = AuditRepository(api.services.db)
    now = datetime(2026, 6, 1)
    await repo.add([_event(now - timedelta(days=d), f"op{d}") for d in (8, 6)])
    audit = AuditLog(repo, retention_days=7, sweep_seconds=3600, clock=lambda: now)
    audit.start()
    try:
        await asyncio.wait_for(audit.swept.wait(), timeout=30)
    finally:
        await audit.stop()
    left, total = await repo.page("acme", AuditQuery())
    assert total == 1 and left[0].operation == "op6"

"""Unexpected failures: a 500 envelope with the correlation id, logged, no stack trace."""

from __future__ import annotations

import json
import logging

import pytest
from support import Api, assert_envelope

from audiocache.logs import JsonFormatter
from audiocache.tts.fake import FakeEngine


# Error rendering and link building do not touch storage: one backend is enough.
@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


class ExplodingEngine(FakeEngine):
    async def synthesize(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internal detail")


@pytest.fixture
def fake_engine() -> FakeEngine:
    return ExplodingEngine()


async def test_unhandled_error_is_a_500_envelope_and_logged(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    await api.create_agent("bot")
    with caplog.at_level(logging.ERROR, logger="audiocache"):
        r = await api.client.post(
            "/v1/agents/bot/tts",
            json={"text": "Hello"},
            headers={**api.headers, "X-PolyAI-Correlation-Id": "trace-123"},
        )
    body = assert_envelope(r, 500, "INTERNAL_ERROR")
    assert body["error_id"] == "trace-123"
    assert "secret internal detail" not in r.text
    record = next(rec for rec in caplog.records if "trace-123" in rec.getMessage())
    line = json.loads(JsonFormatter().format(record))
    assert line["correlation_id"] == "trace-123" and "RuntimeError" in line["exception"]


@pytest.mark.parametrize("bad", [b"", b"x" * 200, b"has space", "ünï".encode()])
async def test_unusable_incoming_correlation_ids_are_replaced(api: Api, bad: bytes) -> None:
    r = await api.client.get("/nope", headers=[(b"X-PolyAI-Correlation-Id", bad)])
    body = assert_envelope(r, 404, "NOT_FOUND")
    assert body["error_id"].encode() != bad and len(body["error_id"]) == 36


async def test_405_and_unknown_routes_are_envelopes(api: Api) -> None:
    r = await api.client.put("/v1/accounts/acme/agents", headers=api.headers)
    assert_envelope(r, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in r.headers["allow"]
    assert_envelope(await api.client.get("/v1/nothing/here"), 404, "NOT_FOUND")

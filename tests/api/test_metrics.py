"""GET /metrics after a known sequence of requests: exact counts, parsed with
prometheus-client's own parser. The hot path's requests count like any route's."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from support import Api, assert_envelope

from audiocache.api.hot_path import FILE_ROUTE, SPEAK_ROUTE
from audiocache.config import Settings
from audiocache.tts.fake import FakeEngine

LIST_ROUTE = "/v1/agents/{agentId}/audio-cache"


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # one fake synthesis at a time, so a second phrase waits in the queue
    return settings.model_copy(update={"cloud_concurrency": 1})


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **kwargs: Any) -> httpx.Response:
    r = await client.get("/metrics", **kwargs)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return r


async def until(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never met")


async def test_counts_of_a_known_sequence(api: Api, fake_engine: FakeEngine) -> None:
    await api.create_agent("bot")  # a create and a cache-policy PUT
    start = await scrape(api.client)
    before = value(parse(start.text), "audiocache_bytes_served_total")
    responses: list[httpx.Response] = []
    others = [start]  # every response from here on, for the byte count
    pool = api.services.engines.get("fake")
    fake_engine.gate = asyncio.Event()
    together = [asyncio.create_task(api.speak("bot", "Together")) for _ in range(3)]
    apart = asyncio.create_task(api.speak("bot", "Apart"))
    await until(lambda: fake_engine.active == 1 and pool.waiting == 1)
    await until(lambda: api.services.metrics.singleflight_joins._value.get() == 2)
    others.append(await scrape(api.client))
    during = parse(others[-1].text)
    assert value(during, "audiocache_engine_queue_depth", provider="fake") == 1
    assert value(during, "audiocache_engine_running", provider="fake") == 1
    assert value(during, "audiocache_singleflight_joins_total") == 2
    fake_engine.gate.set()
    responses += await asyncio.gather(*together, apart)
    assert all(r.status_code == 200 for r in responses)
    entry = responses[0].headers["x-audio-cache-entry-id"]
    for _ in range(2):
        responses.append(await api.speak("bot", "Together"))
        assert responses[-1].headers["x-audio-cache"] == "hit"
    responses.append(
        await api.client.get(f"/v1/agents/bot/audio-cache/{entry}/file", headers=api.headers)
    )
    responses.append(await api.client.get("/v1/agents/bot/audio-cache", headers=api.headers))
    others.append(await api.client.get("/v1/agents/bot/audio-cache"))
    assert_envelope(others[-1], 401)
    others.append(await api.client.get("/no/such/route"))
    assert_envelope(others[-1], 404)
    r = await api.client.put(
        "/v1/agents/bot/cache-policy",
        json={"admission": "always", "maxEntries": 1},
        headers=api.headers,
    )
    assert r.status_code == 200
    others.append(r)
    assert (await api.services.evictor.run_once()).evicted_entries == 1
    others.append(await scrape(api.client))
    samples = parse((await scrape(api.client)).text)

    def requests(route: str, status: int) -> float:
        return value(samples, "audiocache_requests_total", route=route, status=str(status))

    assert requests(SPEAK_ROUTE, 200) == 6
    assert requests(FILE_ROUTE, 200) == 1
    assert requests(LIST_ROUTE, 200) == 1
    assert requests(LIST_ROUTE, 401) == 1
    assert requests("unmatched", 404) == 1
    assert requests("/v1/agents/{agentId}/cache-policy", 200) == 2
    assert requests("/v1/accounts/{accountId}/agents", 200) == 1
    assert requests("/metrics", 200) == 3  # the one under way is counted once it is done
    assert value(samples, "audiocache_cache_lookups_total", agent="bot", result="miss") == 4
    assert value(samples, "audiocache_cache_lookups_total", agent="bot", result="hit") == 2
    assert value(samples, "audiocache_characters_saved_total", provider="fake") == 2 * 8
    synthesized = value(samples, "audiocache_characters_synthesized_total", provider="fake")
    assert synthesized == len("Together") + len("Apart")
    assert value(samples, "audiocache_synthesis_seconds_count", provider="fake") == 2
    assert value(samples, "audiocache_singleflight_joins_total") == 2
    assert value(samples, "audiocache_evictions_total") == 1
    assert value(samples, "audiocache_engine_queue_depth", provider="fake") == 0
    assert value(samples, "audiocache_engine_running", provider="fake") == 0
    # every body byte sent, the errors' envelopes and the earlier scrapes included
    sent = sum(len(r.content) for r in [*responses, *others])
    assert value(samples, "audiocache_bytes_served_total") == before + sent


async def test_the_route_label_is_the_template_never_the_raw_path(api: Api) -> None:
    await api.create_agent("bot")
    for entry in ("1", "2", "999"):
        await api.client.get(f"/v1/agents/bot/audio-cache/{entry}/file", headers=api.headers)
        await api.client.get(
            f"/v1/agents/bot/audio-cache/{entry}/file?output_format=wav", headers=api.headers
        )
    samples = parse((await scrape(api.client)).text)
    routes = {
        dict(labels)["route"] for name, labels in samples if name == "audiocache_requests_total"
    }
    assert FILE_ROUTE in routes
    assert not any("999" in route for route in routes), routes
    assert value(samples, "audiocache_requests_total", route=FILE_ROUTE, status="404") == 6


async def test_a_metrics_token_is_asked_for_when_set(api: Api) -> None:
    api.services.settings = api.services.settings.model_copy(
        update={"metrics_token": SecretStr("s3cret-metrics")}
    )
    r = await api.client.get("/metrics")
    assert_envelope(r, 401, "UNAUTHORIZED")
    assert r.headers["www-authenticate"].startswith("Bearer")
    wrong = await api.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert_envelope(wrong, 401, "UNAUTHORIZED")
    await scrape(api.client, headers={"Authorization": "Bearer s3cret-metrics"})

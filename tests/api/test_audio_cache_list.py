"""Listing audio cache entries: paging, sort, filter, and every status the contract lists."""

from __future__ import annotations

from datetime import datetime

import pytest
from audio_cache_helpers import (
    AGENT,
    BASE,
    assert_entry_shape,
    assert_json,
)
from support import Api, assert_envelope

# -- list -------------------------------------------------------------------------------


async def test_list_success_shape(api: Api, entry_id: str) -> None:
    body = assert_json(await api.client.get(BASE, headers=api.headers))
    assert set(body) == {"entries", "totalCount"}
    assert body["totalCount"] == 1
    (entry,) = body["entries"]
    assert_entry_shape(entry)
    assert entry["id"] == entry_id
    assert entry["transcript"] == "Thanks for calling"
    assert (entry["provider"], entry["providerVoiceId"]) == ("fake", "alpha")
    assert entry["languageCode"] == "en-US"
    assert entry["hitCount"] == 0
    assert entry["imported"] is False and entry["regenerated"] is False
    assert entry["audioFilename"] is None


async def test_list_empty_agent(api: Api, agent: str) -> None:
    assert await api.entries(agent) == {"entries": [], "totalCount": 0}


async def test_list_limit_and_offset_page_and_total_counts_all(api: Api, agent: str) -> None:
    ids = [await api.seed_entry(agent, f"Phrase number {n}") for n in range(5)]
    page = await api.entries(agent, limit=2, offset=1, sort="id:asc")
    assert [e["id"] for e in page["entries"]] == ids[1:3]
    assert page["totalCount"] == 5
    past_the_end = await api.entries(agent, limit=2, offset=10)
    assert past_the_end == {"entries": [], "totalCount": 5}
    default_page = await api.entries(agent)
    assert len(default_page["entries"]) == 5


@pytest.fixture
async def catalogue(api: Api, agent: str) -> list[str]:
    """Entries differing in every sortable/filterable field (espeak gives a second provider)."""
    ids = [
        await api.seed_entry(agent, "Hi"),
        await api.seed_entry(agent, "Thanks for calling, goodbye"),
        await api.seed_entry(agent, "Zebra crossing ahead", voice="fake:beta", language="en-GB"),
        await api.seed_entry(agent, "Bonjour et merci", language="fr-FR"),
        await api.seed_entry(agent, "Hello from espeak", voice="espeak:en-us"),
    ]
    for _ in range(3):
        assert (await api.speak(agent, "Thanks for calling, goodbye")).headers[
            "x-audio-cache"
        ] == "hit"
    assert (await api.speak(agent, "Hi")).headers["x-audio-cache"] == "hit"
    await api.services.hits.flush()
    return ids


SORT_KEYS = {
    "id": lambda e: int(e["id"]),
    "hit_count": lambda e: e["hitCount"],
    "cached_at": lambda e: datetime.fromisoformat(e["cachedAt"]),
    "duration": lambda e: e["duration"],
    "transcript": lambda e: e["transcript"],
    "provider": lambda e: e["provider"],
    "language_code": lambda e: e["languageCode"],
    "voice": lambda e: e["providerVoiceId"],
}


@pytest.mark.parametrize("direction", ["asc", "desc"])
@pytest.mark.parametrize("field", sorted(SORT_KEYS))
async def test_list_sort_orders_by_each_field(
    api: Api, catalogue: list[str], field: str, direction: str
) -> None:
    key = SORT_KEYS[field]
    entries = (await api.entries(AGENT, sort=f"{field}:{direction}"))["entries"]
    values = [key(e) for e in entries]
    assert len(entries) == len(catalogue) and len(set(values)) > 1
    assert values == sorted(values, reverse=direction == "desc")


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_list_sort_by_size(api: Api, catalogue: list[str], direction: str) -> None:
    """The size is not in the entry; the download's Content-Length tells it."""
    entries = (await api.entries(AGENT, sort=f"size:{direction}"))["entries"]
    values = []
    for e in entries:
        head = await api.client.head(f"{BASE}/{e['id']}/file", headers=api.headers)
        values.append(int(head.headers["content-length"]))
    assert len(entries) == len(catalogue) and len(set(values)) > 1
    assert values == sorted(values, reverse=direction == "desc")


@pytest.mark.parametrize("direction", ["asc", "desc"])
async def test_list_sort_by_last_hit_at(api: Api, agent: str, direction: str) -> None:
    """Not in the entry either: hit B, then later A, and compare their places."""
    a = await api.seed_entry(agent, "Hit last")
    b = await api.seed_entry(agent, "Hit first")
    await api.seed_entry(agent, "Never hit")
    for text in ("Hit first", "Hit last"):
        assert (await api.speak(agent, text)).headers["x-audio-cache"] == "hit"
        await api.services.hits.flush()
    ids = [e["id"] for e in (await api.entries(agent, sort=f"last_hit_at:{direction}"))["entries"]]
    assert len(ids) == 3
    assert (ids.index(b) < ids.index(a)) is (direction == "asc")


@pytest.mark.parametrize("expression", ["hitCount:desc", "cachedAt:asc", "languageCode:desc"])
async def test_list_sort_accepts_camel_case_names(
    api: Api, catalogue: list[str], expression: str
) -> None:
    assert (await api.entries(AGENT, sort=expression))["totalCount"] == len(catalogue)


async def test_list_sort_multi_key(api: Api, catalogue: list[str]) -> None:
    entries = (await api.entries(AGENT, sort="provider:asc,duration:desc"))["entries"]
    keys = [(e["provider"], -e["duration"]) for e in entries]
    assert keys == sorted(keys)
    assert [e["provider"] for e in entries] == ["espeak", "fake", "fake", "fake", "fake"]


async def test_list_sort_ties_are_stable_by_id(api: Api, catalogue: list[str]) -> None:
    entries = (await api.entries(AGENT, sort="provider:asc"))["entries"]
    fake_ids = [int(e["id"]) for e in entries if e["provider"] == "fake"]
    assert fake_ids == sorted(fake_ids)


FILTERS = {
    "transcript:contains:thanks": {"Thanks for calling, goodbye"},
    "transcript:contains:o": {
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
        "Hello from espeak",
    },
    "provider:eq:fake": {
        "Hi",
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
    },
    "provider:eq:espeak": {"Hello from espeak"},
    "voice:eq:beta": {"Zebra crossing ahead"},
    "voice:eq:alpha": {"Hi", "Thanks for calling, goodbye", "Bonjour et merci"},
    "language:eq:en-US": {"Hi", "Thanks for calling, goodbye", "Hello from espeak"},
    "language:eq:fr-FR": {"Bonjour et merci"},
    "imported:eq:false": {
        "Hi",
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
        "Hello from espeak",
    },
    "imported:eq:true": set(),
    "provider:eq:fake and voice:eq:alpha and language:eq:en-US": {
        "Hi",
        "Thanks for calling, goodbye",
    },
    "transcript:contains:o and provider:eq:fake and imported:eq:false": {
        "Thanks for calling, goodbye",
        "Zebra crossing ahead",
        "Bonjour et merci",
    },
}


@pytest.mark.parametrize("expression", list(FILTERS))
async def test_list_filter(api: Api, catalogue: list[str], expression: str) -> None:
    body = await api.entries(AGENT, filter=expression)
    assert {e["transcript"] for e in body["entries"]} == FILTERS[expression]
    assert body["totalCount"] == len(FILTERS[expression])


async def test_list_total_count_is_the_filters_matches_not_the_page(
    api: Api, catalogue: list[str]
) -> None:
    body = await api.entries(AGENT, filter="provider:eq:fake", limit=1, offset=1)
    assert len(body["entries"]) == 1
    assert body["totalCount"] == 4


async def test_list_repeated_filter_parameters_combine(api: Api, catalogue: list[str]) -> None:
    params = [("filter", "provider:eq:fake"), ("filter", "language:eq:fr-FR")]
    response = await api.client.get(BASE, params=params, headers=api.headers)
    body = assert_json(response)
    assert [e["transcript"] for e in body["entries"]] == ["Bonjour et merci"]
    assert body["totalCount"] == 1


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"sort": "nope:asc"}, "INVALID_SORT"),
        ({"sort": "duration:sideways"}, "INVALID_SORT"),
        ({"sort": "duration:asc,"}, "INVALID_SORT"),
        ({"sort": ""}, "INVALID_SORT"),
        ({"filter": "nope:eq:x"}, "INVALID_FILTER"),
        ({"filter": "provider:contains:fa"}, "INVALID_FILTER"),
        ({"filter": "imported:eq:maybe"}, "INVALID_FILTER"),
        ({"filter": "transcript"}, "INVALID_FILTER"),
        ({"filter": "transcript:contains:"}, "INVALID_FILTER"),
        ({"filter": "provider:eq:fake and bogus"}, "INVALID_FILTER"),
        ({"limit": "0"}, "INVALID_REQUEST"),
        ({"limit": "201"}, "INVALID_REQUEST"),
        ({"limit": "ten"}, "INVALID_REQUEST"),
        ({"offset": "-1"}, "INVALID_REQUEST"),
        ({"offset": "x"}, "INVALID_REQUEST"),
    ],
)
async def test_list_bad_query_is_400(
    api: Api, agent: str, params: dict[str, str], code: str
) -> None:
    assert_envelope(await api.client.get(BASE, params=params, headers=api.headers), 400, code)


async def test_list_limit_bounds_are_accepted(api: Api, entry_id: str) -> None:
    for limit in (1, 200):
        assert (await api.entries(AGENT, limit=limit))["totalCount"] == 1


async def test_list_unknown_agent_is_404(api: Api) -> None:
    r = await api.client.get("/v1/agents/nobody/audio-cache", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")

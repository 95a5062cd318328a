"""GET …/audio-cache/stats over the real stack, on every backend: a known sequence of
runtime-path calls under a controlled clock and synthesis timer gives exact figures, both
from this process's unflushed counts and from what the flusher stored."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from support import Api, assert_envelope

from audiocache.config import Settings
from audiocache.storage.tables import lookup_stats

H0 = datetime(2026, 1, 1, 10, 15)
HELLO, BYE, NEW = "Hello there", "Goodbye", "New one"  # 11, 7 and 7 characters
PRICE = 20.0  # USD per million characters of the fake provider


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"prices_usd_per_million_characters": {"fake": PRICE, "espeak": 0.0}}
    )


class Clock:
    def __init__(self) -> None:
        self.now = H0
        self.ticks = 0.0

    def timer(self) -> float:
        """Each synthesis is timed by two calls: every one takes 0.5 s."""
        self.ticks += 0.5
        return self.ticks


@pytest.fixture
def clock(api: Api) -> Clock:
    clock = Clock()
    api.services.hits.lookups.clock = lambda: clock.now
    api.services.hits.lookups.timer = clock.timer
    return clock


async def stats(api: Api, agent: str, **params: Any) -> dict[str, Any]:
    r = await api.client.get(
        f"/v1/agents/{agent}/audio-cache/stats", params=params, headers=api.headers
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def say(api: Api, agent: str, text: str, expect: str) -> None:
    r = await api.speak(agent, text)
    assert r.status_code == 200, r.text
    assert r.headers["x-audio-cache"] == expect, text


async def download(api: Api, agent: str, entry_id: str) -> bytes:
    r = await api.client.get(f"/v1/agents/{agent}/audio-cache/{entry_id}/file", headers=api.headers)
    assert r.status_code == 200
    return r.content


def window(lookups: int, hits: int, ratio: float | None, chars: float | None) -> dict[str, Any]:
    return {"lookups": lookups, "hits": hits, "hitRatio": ratio, "characterHitRatio": chars}


async def test_stats_of_a_known_sequence(api: Api, clock: Clock) -> None:
    agent = await api.create_agent("bot")
    empty = await stats(api, agent)
    assert empty["entries"] == 0 and empty["topPhrases"] == []
    assert empty["windows"]["hour"] == window(0, 0, None, None)

    for text, expect in [(HELLO, "miss"), (HELLO, "hit"), (HELLO, "hit"), (HELLO, "hit")]:
        await say(api, agent, text, expect)
    await say(api, agent, BYE, "miss")
    clock.now = H0 + timedelta(hours=2)
    await say(api, agent, BYE, "hit")
    clock.now = H0 + timedelta(days=3)
    await say(api, agent, HELLO, "hit")
    await say(api, agent, NEW, "miss")
    listed = (await api.entries(agent))["entries"]
    by_text = {e["transcript"]: e for e in listed}  # unflushed: not yet in the list order
    hello, bye = by_text[HELLO], by_text[BYE]
    r = await api.client.put(f"/v1/agents/{agent}/audio-cache/{bye['id']}/pin", headers=api.headers)
    assert r.status_code == 200, r.text

    sizes = sum([len(await download(api, agent, e["id"])) for e in listed])
    # hits: 3 + 1 + 1 = 5 of 8 lookups; 33 + 7 + 11 = 51 of 76 characters
    expected = {
        "entries": 3,
        "bytes": sizes,
        "pinned": 1,
        "windows": {
            "hour": window(2, 1, 0.5, 11 / 18),
            "day": window(2, 1, 0.5, 11 / 18),
            "month": window(8, 5, 5 / 8, 51 / 76),
        },
        "topPhrases": [
            {"id": hello["id"], "transcript": HELLO, "hitCount": 4},
            {"id": bye["id"], "transcript": BYE, "hitCount": 1},
        ],
        "charactersSaved": 51,
        # three syntheses of 0.5 s for 25 characters: 0.06 s a character
        "synthesisSecondsSaved": pytest.approx(51 * 1.5 / 25),
        "moneySaved": {
            "currency": "USD",
            "total": pytest.approx(51 * PRICE / 1e6),
            "byProvider": {"fake": pytest.approx(51 * PRICE / 1e6)},
        },
        "evictedTotal": 0,
        "privacySkipped": 0,
    }
    unflushed = await stats(api, agent, top=2)
    assert unflushed == expected
    await api.services.hits.flush()
    assert await stats(api, agent, top=2) == expected  # the same once stored

    # 35 days on: the windows are empty, the all-time savings stay, old hours are pruned
    clock.now = H0 + timedelta(days=35)
    await say(api, agent, NEW, "hit")
    later = await stats(api, agent, top=1)
    assert later["windows"]["month"] == window(1, 1, 1.0, 1.0)
    assert later["charactersSaved"] == 51 + 7
    assert later["topPhrases"] == [expected["topPhrases"][0]]
    await api.services.hits.flush()
    async with api.services.db.read() as conn:
        hours = (await conn.execute(sa.select(lookup_stats.c.hour))).scalars().all()
    assert sorted(hours) == [datetime(2026, 2, 5, 10)]
    assert (await stats(api, agent, top=1)) == later


async def test_stats_are_per_agent_and_bounded(api: Api, clock: Clock) -> None:
    one = await api.create_agent("one")
    two = await api.create_agent("two")
    await say(api, one, HELLO, "miss")
    await say(api, one, HELLO, "hit")
    assert (await stats(api, two))["windows"]["day"] == window(0, 0, None, None)
    assert (await stats(api, one))["windows"]["day"] == window(2, 1, 0.5, 0.5)
    for bad in ("0", "101", "x"):
        r = await api.client.get(
            f"/v1/agents/{one}/audio-cache/stats", params={"top": bad}, headers=api.headers
        )
        assert_envelope(r, 400)
    r = await api.client.get("/v1/agents/nobody/audio-cache/stats", headers=api.headers)
    assert_envelope(r, 404, "NOT_FOUND")

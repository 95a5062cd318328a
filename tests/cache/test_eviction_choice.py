"""The pure eviction rules: which candidates go, in which order, under which limits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from audiocache.cache.eviction import choose_victims, limits_for, sort_key, validate_limits
from audiocache.errors import InvalidInput
from audiocache.models import Agent, Candidate, InstallationLimits, Limits, Ttl, Usage

T0 = datetime(2030, 1, 1)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def cand(
    id: int, *, cached: float = 0, hit: float | None = None, hits: int = 0, size: int = 100
) -> Candidate:
    return Candidate(id, "a", size, hits, minutes(cached), None if hit is None else minutes(hit))


def ordered(cands: list[Candidate], limits: Limits, now: datetime) -> list[Candidate]:
    return sorted(cands, key=lambda c: sort_key(c, limits, now))


def victims(limits: Limits, cands: list[Candidate], now: datetime = T0, usage: Usage | None = None):
    usage = usage or Usage(len(cands), sum(c.size_bytes for c in cands))
    return [c.id for c in choose_victims(limits, usage, ordered(cands, limits, now), now)]


def test_lru_evicts_the_oldest_last_use_and_a_never_hit_entry_counts_from_cached_at() -> None:
    cands = [cand(1, hit=50), cand(2, cached=10), cand(3, hit=5), cand(4, hit=40), cand(5, hit=60)]
    assert victims(Limits(max_entries=2), cands) == [3, 2, 4]


def test_lfu_evicts_fewest_hits_ties_by_oldest_last_hit_then_id() -> None:
    cands = [
        cand(1, hits=9, hit=1),
        cand(2, hits=1, hit=30),
        cand(3, hits=1, hit=20),
        cand(4, hits=0, cached=50),
        cand(5, hits=1, hit=20),
    ]
    limits = Limits(max_entries=1, policy="lfu")
    assert victims(limits, cands) == [4, 3, 5, 2]


def test_bytes_and_entries_each_bind() -> None:
    cands = [cand(1, hit=1, size=500), cand(2, hit=2, size=100), cand(3, hit=3, size=100)]
    assert victims(Limits(max_bytes=250), cands) == [1]  # 700 → 200: one big entry suffices
    assert victims(Limits(max_entries=2), cands) == [1]
    assert victims(Limits(max_bytes=150), cands) == [1, 2]
    assert victims(Limits(max_bytes=250, max_entries=1), cands) == [1, 2]


def test_usage_counts_protected_entries_so_more_evictable_ones_go() -> None:
    # Usage includes two pinned entries the candidates (evictable only) do not show.
    cands = [cand(1, hit=1), cand(2, hit=2), cand(3, hit=3)]
    assert victims(Limits(max_entries=3), cands, usage=Usage(5, 500)) == [1, 2]
    assert victims(Limits(max_entries=1), cands, usage=Usage(5, 500)) == [1, 2, 3]


def test_ttl_from_cached_or_sliding_from_the_last_hit() -> None:
    old_but_hit, young = cand(1, cached=0, hit=55), cand(2, cached=50)
    never_hit_old = cand(3, cached=0)
    now = minutes(60)
    by_cached = Limits(ttls=(Ttl(30 * 60, "cached"),))
    by_hit = Limits(ttls=(Ttl(30 * 60, "last_hit"),))
    assert victims(by_cached, [old_but_hit, young, never_hit_old], now) == [3, 1]
    assert victims(by_hit, [old_but_hit, young, never_hit_old], now) == [3]
    # Exactly at the TTL the entry is expired; a second before, it is not.
    assert victims(by_cached, [cand(4, cached=30)], now) == [4]
    assert victims(by_cached, [cand(4, cached=30)], now - timedelta(seconds=1)) == []


def test_expired_entries_go_first_then_the_policy_order_fills_the_limit() -> None:
    cands = [
        cand(1, cached=35, hit=38, hits=1),
        cand(2, cached=35),
        cand(3, cached=1, hit=39, hits=7),
    ]
    limits = Limits(max_entries=1, policy="lfu", ttls=(Ttl(30 * 60, "cached"),))
    # 3 expired (cached at minute 1) although it has the most hits; then lfu: 2 (0 hits).
    assert victims(limits, cands, minutes(40)) == [3, 2]


def agent(**fields: object) -> Agent:
    base: dict[str, object] = dict(
        id="a", account_id="acme", public_id="a", name="A", greeting="", language_code="en",
        voice_id=None, llm_model_id=None, admission="always", admission_min_hits=None,
        admission_window_seconds=None, branch_count=1, created_at=T0, updated_at=T0,
    )  # fmt: skip
    return Agent(**{**base, **fields})  # type: ignore[arg-type]


def test_an_agents_limit_only_tightens_the_installation_quota_and_both_ttls_apply() -> None:
    inst = InstallationLimits(
        agent=Limits(max_entries=10, max_bytes=None, policy="lfu", ttls=(Ttl(60, "cached"),))
    )
    assert limits_for(agent(), inst) == Limits(10, None, "lfu", (Ttl(60, "cached"),))
    tighter = agent(max_entries=3, max_bytes=99, eviction="lru", ttl_seconds=5, ttl_from="last_hit")
    assert limits_for(tighter, inst) == Limits(
        3, 99, "lru", (Ttl(60, "cached"), Ttl(5, "last_hit"))
    )
    assert limits_for(agent(max_entries=50), inst).max_entries == 10
    assert limits_for(agent(ttl_seconds=7), InstallationLimits()).ttls == (Ttl(7, "cached"),)
    assert not limits_for(agent(), InstallationLimits()).active


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((0, None, None, None, None), "maxEntries"),
        ((None, -1, None, None, None), "maxBytes"),
        ((None, None, "fifo", None, None), "eviction"),
        ((None, None, None, 0, None), "ttlSeconds"),
        ((None, None, None, 60, "forever"), "ttlFrom"),
    ],
)
def test_validation_names_the_field(args: tuple, field: str) -> None:
    with pytest.raises(InvalidInput, match=field):
        validate_limits(*args)

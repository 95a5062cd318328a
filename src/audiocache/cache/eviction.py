"""Eviction: which entries leave storage (pure: no I/O, no clock of its own).

Limits come from the agent's policy and the installation's settings. An agent's limit only
tightens the installation's per-agent one (the installation's is a quota, not a
suggestion); ``null`` means "no limit of the agent's own". Both TTL rules apply when both
are set. Pinned and imported entries are never candidates, but they count towards usage:
they take space, so an agent over its limit with only pinned entries stays over it.

Candidates arrive expired-first, then in policy order (the SQL queries in
``storage/eviction_repo.py`` read them so from indexes; ``sort_key`` is the policy order):
``lru`` oldest last hit first (a never-hit entry counts from when it was cached), ``lfu``
lowest hit count first, ties by oldest last hit; then by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from audiocache.errors import InvalidInput
from audiocache.models import Agent, Candidate, InstallationLimits, Limits, Ttl, Usage

POLICIES = ("lru", "lfu")
TTL_FROM = ("cached", "last_hit")
MAX_TTL_SECONDS = 100 * 366 * 86400
MAX_ENTRIES = 2**31 - 1  # the column's range on every database
MAX_BYTES = 2**62


def expired(candidate: Candidate, ttls: Iterable[Ttl], now: datetime) -> bool:
    for ttl in ttls:
        since = candidate.cached_at if ttl.since == "cached" else candidate.last_used
        if since <= now - timedelta(seconds=ttl.seconds):
            return True
    return False


def sort_key(candidate: Candidate, limits: Limits, now: datetime) -> tuple[object, ...]:
    policy: tuple[object, ...] = (candidate.last_used, candidate.id)
    if limits.policy == "lfu":
        policy = (candidate.hit_count, *policy)
    return (not expired(candidate, limits.ttls, now), *policy)


def choose_victims(
    limits: Limits, usage: Usage, candidates: Iterable[Candidate], now: datetime
) -> list[Candidate]:
    """The candidates to evict: every expired one, and policy-order ones while usage is
    over a limit (each victim's entry and bytes come off usage as it is chosen)."""
    entries, size = usage.entries, usage.bytes
    victims = []
    for candidate in candidates:
        over = (limits.max_entries is not None and entries > limits.max_entries) or (
            limits.max_bytes is not None and size > limits.max_bytes
        )
        if over or expired(candidate, limits.ttls, now):
            victims.append(candidate)
            entries -= 1
            size -= candidate.size_bytes
    return victims


def limits_for(agent: Agent, installation: InstallationLimits) -> Limits:
    default = installation.agent
    ttls = list(default.ttls)
    if agent.ttl_seconds is not None:
        ttls.append(Ttl(agent.ttl_seconds, agent.ttl_from or "cached"))
    return Limits(
        max_entries=_tighter(agent.max_entries, default.max_entries),
        max_bytes=_tighter(agent.max_bytes, default.max_bytes),
        policy=agent.eviction or default.policy,
        ttls=tuple(ttls),
    )


def _tighter(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def validate_limits(
    max_entries: int | None,
    max_bytes: int | None,
    eviction: str | None,
    ttl_seconds: int | None,
    ttl_from: str | None,
) -> None:
    """The same rules as the API's schema, for callers that bypass it (the CLI)."""
    for name, value, most in (
        ("maxEntries", max_entries, MAX_ENTRIES),
        ("maxBytes", max_bytes, MAX_BYTES),
    ):
        if value is not None and not 1 <= value <= most:
            raise InvalidInput(f"{name} must be between 1 and {most} (or null for no limit)")
    if eviction is not None and eviction not in POLICIES:
        raise InvalidInput(f"eviction must be one of {', '.join(POLICIES)} (or null)")
    if ttl_seconds is not None and not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidInput(f"ttlSeconds must be between 1 and {MAX_TTL_SECONDS} (or null)")
    if ttl_from is not None and ttl_from not in TTL_FROM:
        raise InvalidInput(f"ttlFrom must be one of {', '.join(TTL_FROM)} (or null)")

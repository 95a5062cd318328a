"""Prometheus metrics: one ``Metrics`` object per app, scraped at ``GET /metrics``.

Each app gets its own registry, so two apps in one process (tests) count apart. With
``--workers N`` the server points ``PROMETHEUS_MULTIPROC_DIR`` at a folder of its own
before the workers start (``server.py``): prometheus-client then keeps every worker's values
in files there, and a scrape, whichever worker answers it, adds up all of them. Gauges
(engine queue depth, engines running) are summed over live workers ("livesum"); a worker
that stops marks its files dead.

What is counted where: requests (route template, status), response bytes, in the request
observer (``api/observe.py``) around the hot path too; lookups, characters saved and
single-flight joins in ``CacheService``; syntheses (seconds, characters) and queue depth in
the engine pools; evictions in the evictor.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SYNTHESIS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "audiocache_requests",
            "HTTP requests by route template and status",
            ["route", "status"],
            registry=r,
        )
        self.bytes_served = Counter(
            "audiocache_bytes_served", "Response body bytes sent", registry=r
        )
        self.lookups = Counter(
            "audiocache_cache_lookups",
            "Runtime-path cache lookups by agent (the agentId clients use) and result",
            ["agent", "result"],
            registry=r,
        )
        self.characters_saved = Counter(
            "audiocache_characters_saved",
            "Characters served from the cache instead of synthesized, by provider",
            ["provider"],
            registry=r,
        )
        self.characters_synthesized = Counter(
            "audiocache_characters_synthesized",
            "Characters sent to an engine, by provider",
            ["provider"],
            registry=r,
        )
        self.synthesis_seconds = Histogram(
            "audiocache_synthesis_seconds",
            "Time one synthesis held its engine slot, by provider",
            ["provider"],
            buckets=SYNTHESIS_BUCKETS,
            registry=r,
        )
        self.singleflight_joins = Counter(
            "audiocache_singleflight_joins",
            "Runtime-path misses that joined a synthesis already under way",
            registry=r,
        )
        self.evictions = Counter(
            "audiocache_evictions", "Entries removed by eviction (limits and TTLs)", registry=r
        )
        self.lane_answers = Counter(
            "audiocache_hot_lane_answers",
            "Requests answered from memory by the HTTP protocol itself (api/hot_lane.py), "
            "a subset of audiocache_requests",
            registry=r,
        )
        self.engine_queue_depth = Gauge(
            "audiocache_engine_queue_depth",
            "Syntheses waiting for an engine slot, by provider",
            ["provider"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.engine_running = Gauge(
            "audiocache_engine_running",
            "Syntheses running in an engine, by provider",
            ["provider"],
            multiprocess_mode="livesum",
            registry=r,
        )
        # Label children looked up once: the hot path pays a dict lookup, not labels().
        self._request_children: dict[tuple[str, int], Any] = {}
        self._lookup_children: dict[tuple[str, bool], Any] = {}
        self._saved_children: dict[str, Any] = {}

    # -- what the app and the domain call -------------------------------------------------

    def request(self, route: str, status: int, body_bytes: int) -> None:
        child = self._request_children.get((route, status))
        if child is None:
            child = self._request_children[(route, status)] = self.requests.labels(
                route, str(status)
            )
        child.inc()
        if body_bytes:
            self.bytes_served.inc(body_bytes)

    def lookup(self, agent: str, provider: str, characters: int, hit: bool) -> None:
        child = self._lookup_children.get((agent, hit))
        if child is None:
            child = self._lookup_children[(agent, hit)] = self.lookups.labels(
                agent, "hit" if hit else "miss"
            )
        child.inc()
        if hit:
            saved = self._saved_children.get(provider)
            if saved is None:
                saved = self._saved_children[provider] = self.characters_saved.labels(provider)
            saved.inc(characters)

    def synthesized(self, provider: str, characters: int, seconds: float) -> None:
        self.characters_synthesized.labels(provider).inc(characters)
        self.synthesis_seconds.labels(provider).observe(seconds)

    def engine_load(self, provider: str, waiting: int, running: int) -> None:
        self.engine_queue_depth.labels(provider).set(waiting)
        self.engine_running.labels(provider).set(running)

    def joined(self) -> None:
        self.singleflight_joins.inc()

    def evicted(self, entries: int) -> None:
        if entries:
            self.evictions.inc(entries)

    # -- the scrape -----------------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The text exposition and its content type: every worker's values with workers."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST


def mark_worker_stopped() -> None:
    """A worker going away: its live gauges stop counting (files of counters stay)."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

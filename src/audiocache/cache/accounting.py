"""What the cache counts as it works: each runtime-path lookup (for the stats' hourly
counts, ``cache/lookups.py``, and the Prometheus metrics), each single-flight join, and
the time each synthesis took (the stats' seconds-saved figure)."""

from __future__ import annotations

from collections.abc import Callable

from audiocache.cache.lookups import LookupCounter
from audiocache.metrics import Metrics
from audiocache.models import Agent
from audiocache.tts.base import Engine, SynthesisRequest


class Accounting:
    def __init__(self, lookups: LookupCounter, metrics: Metrics) -> None:
        self.lookups = lookups
        self.metrics = metrics

    def lookup(self, agent: Agent, provider: str, characters: int, hit: bool) -> None:
        self.lookups.lookup(agent.id, provider, characters, hit)
        self.metrics.lookup(agent.public_id, provider, characters, hit)

    def joined(self) -> None:
        self.metrics.joined()

    def timing(self, agent_id: str, provider: str, characters: int) -> Callable[[], None]:
        """Start timing a synthesis; call what this returns once it is done."""
        started = self.lookups.timer()

        def done() -> None:
            seconds = self.lookups.timer() - started
            self.lookups.synthesized(agent_id, provider, characters, seconds)

        return done

    async def synthesize(self, agent_id: str, engine: Engine, request: SynthesisRequest) -> bytes:
        done = self.timing(agent_id, engine.provider, len(request.text))
        audio = await engine.synthesize(request)
        done()
        return audio

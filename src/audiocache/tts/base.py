"""The one engine interface every TTS backend implements.

An engine turns (text, voice, language, tuning) into a complete WAV file. It names the
model it used, because the model is part of the cache key: new model, new audio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from audiocache.errors import ProviderUnavailable


@dataclass(frozen=True)
class SynthesisRequest:
    text: str
    voice: str
    language: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Engine(Protocol):
    provider: str

    def model_for(self, config: Mapping[str, Any], voice: str) -> str:
        """The model identity this config and voice select (part of the cache key): a new
        model, or a new version of the engine that changes the sound, is a new string."""
        ...

    async def validate_voice(self, voice: str) -> None:
        """Raise InvalidVoice if the engine cannot speak with this voice."""
        ...

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        """Return a complete, canonical WAV file; raise SynthesisFailed on engine failure."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class StreamingEngine(Engine, Protocol):
    """An engine that can also hand out audio as it makes it."""

    def sample_rate_for(self, voice: str) -> int:
        """Sample rate of the PCM ``stream()`` yields for this voice."""
        ...

    def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        """Raw 16-bit mono PCM chunks; concatenated, the data of ``synthesize()``'s WAV."""
        ...


class EngineRegistry:
    """Engines by provider name."""

    def __init__(self, engines: list[Engine] | None = None) -> None:
        self._engines: dict[str, Engine] = {}
        for engine in engines or []:
            self.add(engine)

    def add(self, engine: Engine) -> None:
        self._engines[engine.provider] = engine

    def get(self, provider: str) -> Engine | None:
        return self._engines.get(provider)

    def require(self, provider: str) -> Engine:
        """The provider's engine, or ``ProviderUnavailable`` naming the ones there are."""
        engine = self._engines.get(provider)
        if engine is None:
            raise ProviderUnavailable(
                f"No engine for provider {provider!r} on this server "
                f"(available: {', '.join(self.providers()) or 'none'})"
            )
        return engine

    def providers(self) -> list[str]:
        return sorted(self._engines)

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()

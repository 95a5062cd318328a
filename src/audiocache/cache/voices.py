"""The account voice library: named voices (provider + provider voice id + default tuning)
that agents and the runtime path can refer to by id, and a playable sample of each."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from audiocache.cache.keys import KeyParts
from audiocache.cache.signing import Signer
from audiocache.cache.tuning import VoiceTuningConfig, repair_tuning, validate_tuning
from audiocache.errors import InvalidInput, NotFound
from audiocache.storage.blobs.base import BlobStore
from audiocache.storage.voices_repo import LibraryVoice, VoiceRepository, VoiceSample
from audiocache.tts.base import EngineRegistry, SynthesisRequest

VOICE_ID_PREFIX = "voice-"
# The contract's provider names, plus the engines audiocache ships.
KNOWN_PROVIDERS = frozenset(
    {
        "cartesia",
        "eleven_labs",
        "espeak",
        "google",
        "hume",
        "microsoft",
        "minimax",
        "nemo",
        "openai",
        "piper",
        "play_ht",
        "poly_tts",
        "resemble",
        "rime",
    }
)
_ALIASES = {"elevenlabs": "eleven_labs", "azure": "microsoft", "playht": "play_ht"}
GENDERS = ("male", "female", "neutral")


def canonical_provider(name: str) -> str:
    """'ELEVENLABS', 'ElevenLabs', 'eleven-labs' → 'eleven_labs'."""
    plain = name.strip().lower().replace("-", "_")
    return _ALIASES.get(plain.replace("_", ""), _ALIASES.get(plain, plain))


@dataclass(frozen=True)
class SampleLink:
    voice_id: str
    url_path: str
    expires_in: int
    text: str


class VoiceLibrary:
    def __init__(
        self,
        repo: VoiceRepository,
        engines: EngineRegistry,
        blobs: BlobStore,
        signer: Signer,
        sample_ttl_seconds: int,
    ) -> None:
        self.repo = repo
        self.engines = engines
        self.blobs = blobs
        self.signer = signer
        self.sample_ttl_seconds = sample_ttl_seconds

    async def register(
        self,
        account_id: str,
        *,
        name: str,
        provider: str,
        provider_voice_id: str,
        config: Mapping[str, Any] | VoiceTuningConfig,
        metadata: Mapping[str, Any] | None,
    ) -> LibraryVoice:
        tuning = validate_tuning(config)
        await self._validate(provider, provider_voice_id, name)
        return await self.repo.create(
            {
                "id": VOICE_ID_PREFIX + secrets.token_hex(8),
                "account_id": account_id,
                "name": name.strip(),
                "provider": provider.strip(),
                "provider_voice_id": provider_voice_id.strip(),
                "config": tuning,
                "metadata": dict(metadata or {}),
            }
        )

    async def get(self, account_id: str, voice_id: str) -> LibraryVoice:
        voice = await self.repo.get(account_id, voice_id)
        if voice is None:
            raise NotFound(f"Voice {voice_id!r} not found")
        return _repaired(voice)

    async def find(self, account_id: str, name: str) -> LibraryVoice | None:
        """The library voice a runtime ``voice`` names, if it names one."""
        if not name.startswith(VOICE_ID_PREFIX):
            return None
        voice = await self.repo.get(account_id, name)
        return _repaired(voice) if voice is not None else None

    async def search(
        self,
        account_id: str,
        *,
        language: str | None = None,
        gender: str | None = None,
        provider: str | None = None,
        is_poly_voice: bool | None = None,
    ) -> list[LibraryVoice]:
        if is_poly_voice:
            return []  # this installation curates no voices of its own
        found = [_repaired(v) for v in await self.repo.list_for_account(account_id)]
        if language:
            found = [v for v in found if _same(v.metadata.get("language"), language)]
        if gender:
            found = [v for v in found if _same(v.metadata.get("gender"), gender)]
        if provider:
            wanted = canonical_provider(provider)
            found = [v for v in found if canonical_provider(v.provider) == wanted]
        return found

    async def update(self, voice: LibraryVoice, changes: Mapping[str, Any]) -> LibraryVoice:
        """Patch a voice (one from ``get``). The config is always written: the new one,
        validated, or the current one as read (repaired), so a patch heals a bad stored one."""
        provider = changes.get("provider", voice.provider)
        provider_voice_id = changes.get("provider_voice_id", voice.provider_voice_id)
        config = validate_tuning(changes.get("config", voice.config))
        await self._validate(provider, provider_voice_id, changes.get("name", voice.name))
        return await self.repo.update(voice, {**changes, "config": config})

    async def sample(self, voice: LibraryVoice) -> SampleLink:
        """Synthesize (or reuse) the voice's sample; return a signed, expiring link to it."""
        text = f"Hello! This is {voice.name}. How can I help you today?"
        engine = self.engines.get(canonical_provider(voice.provider))
        if engine is None:
            from audiocache.errors import ProviderUnavailable

            raise ProviderUnavailable(f"No engine for provider {voice.provider!r} on this server")
        language = str(voice.metadata.get("language") or "")
        key = KeyParts(
            agent_id=f"voice-library:{voice.id}",
            provider=engine.provider,
            voice=voice.provider_voice_id,
            model=engine.model_for(voice.config, voice.provider_voice_id),
            language=language,
            text=text,
            config=voice.config,
        ).key
        current = await self.repo.sample(voice.id)
        if current is None or current.sample_key != key:
            audio = await engine.synthesize(
                SynthesisRequest(text, voice.provider_voice_id, language, voice.config)
            )
            blob = await self.blobs.put(audio)

            async def ensure() -> None:
                if await self.blobs.stat(blob.sha256) is None:
                    await self.blobs.put(audio)

            current = VoiceSample(voice.id, key, text, blob.sha256, blob.size)
            await self.repo.save_sample(current, before_commit=ensure)
        token = self.signer.sign(
            {"v": voice.id, "a": voice.account_id, "b": current.blob_sha256},
            self.sample_ttl_seconds,
        )
        return SampleLink(voice.id, f"/v1/voice-samples/{token}", self.sample_ttl_seconds, text)

    async def open_sample(self, token: str) -> VoiceSample:
        payload = self.signer.verify(token)
        sample = await self.repo.sample(str(payload.get("v")))
        if sample is None or sample.blob_sha256 != payload.get("b"):
            raise NotFound("This sample no longer exists")
        return sample

    async def _validate(self, provider: str, provider_voice_id: str, name: str) -> None:
        if not name.strip():
            raise InvalidInput("name must not be empty")
        canonical = canonical_provider(provider)
        if canonical not in KNOWN_PROVIDERS:
            raise InvalidInput(
                f"Unknown provider {provider!r}; use one of: {', '.join(sorted(KNOWN_PROVIDERS))}"
            )
        if not provider_voice_id.strip() or len(provider_voice_id) > 200:
            raise InvalidInput("providerVoiceId must be 1-200 characters")
        engine = self.engines.get(canonical)
        if engine is not None:
            await engine.validate_voice(provider_voice_id.strip())


def _repaired(voice: LibraryVoice) -> LibraryVoice:
    """The voice with a config every engine can take (see ``repair_tuning``)."""
    config = repair_tuning(voice.config, owner=f"voice {voice.id}")
    return voice if config == voice.config else replace(voice, config=config)


def _same(value: Any, wanted: str) -> bool:
    return isinstance(value, str) and value.strip().lower() == wanted.strip().lower()

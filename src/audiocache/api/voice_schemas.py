"""Wire shapes of the account voice library (Agents API 1.0.11)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audiocache.cache.tuning import VoiceTuningConfig
from audiocache.storage.voices_repo import LibraryVoice


class CreateVoiceRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    provider: str = Field(min_length=1, max_length=64)
    config: VoiceTuningConfig
    providerVoiceId: str = Field(min_length=1, max_length=200)
    voiceMetadata: dict[str, Any] | None = None


class UpdateVoiceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    provider: str | None = Field(None, min_length=1, max_length=64)
    config: VoiceTuningConfig | None = None
    providerVoiceId: str | None = Field(None, min_length=1, max_length=200)
    voiceMetadata: dict[str, Any] | None = None

    def changes(self) -> dict[str, Any]:
        names = {
            "name": "name",
            "provider": "provider",
            "config": "config",
            "providerVoiceId": "provider_voice_id",
            "voiceMetadata": "metadata",
        }
        given = {k: getattr(self, k) for k in self.model_fields_set}
        changes = {names[k]: v for k, v in given.items() if v is not None}
        if isinstance(self.config, VoiceTuningConfig):
            changes["config"] = self.config.as_config()
        return changes


class VoiceResponse(BaseModel):
    id: str
    name: str
    provider: str
    providerVoiceId: str
    config: dict[str, Any]
    metadata: dict[str, Any]
    isPolyVoice: bool = False

    @classmethod
    def of(cls, voice: LibraryVoice) -> VoiceResponse:
        return cls(
            id=voice.id,
            name=voice.name,
            provider=voice.provider,
            providerVoiceId=voice.provider_voice_id,
            config=voice.config,
            metadata=voice.metadata,
        )


class GetVoiceResponse(BaseModel):
    voice: VoiceResponse


class ListVoicesResponse(BaseModel):
    voices: list[VoiceResponse]


class VoiceSampleResponse(BaseModel):
    voiceId: str
    sampleUrl: str
    expiresInSeconds: int
    text: str

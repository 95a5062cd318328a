"""The engines' settings: which engines are offered, their credentials, and what a burst of
misses may take of them (``tts/pool.py``). A part of ``Settings``, declared apart."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings


class EngineSettings(BaseSettings):
    default_provider: str = Field(
        "espeak", description="Engine used when a voice names no provider."
    )
    default_voice: str = Field(
        "en-us", description="Voice used when neither the request nor the agent names one."
    )
    espeak_binary: str = Field("espeak-ng", description="Path or name of the espeak-ng binary.")
    piper_enabled: bool = Field(
        True,
        description="Offer the Piper neural engine (provider 'piper') when piper-tts and a "
        "pinned voice package are installed.",
    )
    eleven_labs_api_key: SecretStr | None = Field(
        None, description="ElevenLabs API key; set it to offer provider 'eleven_labs'."
    )
    eleven_labs_base_url: str | None = Field(None, description="ElevenLabs API base URL.")
    openai_api_key: SecretStr | None = Field(
        None, description="OpenAI API key; set it to offer provider 'openai'."
    )
    openai_base_url: str | None = Field(None, description="OpenAI API base URL (with /v1).")
    google_api_key: SecretStr | None = Field(
        None, description="Google Cloud Text-to-Speech API key; offers provider 'google'."
    )
    google_base_url: str | None = Field(None, description="Google Cloud TTS base URL.")
    microsoft_api_key: SecretStr | None = Field(
        None, description="Azure Speech key; offers provider 'microsoft' (needs a region)."
    )
    microsoft_region: str | None = Field(None, description="Azure Speech region, e.g. westeurope.")
    microsoft_base_url: str | None = Field(
        None, description="Azure Speech base URL (instead of the region's)."
    )
    cartesia_api_key: SecretStr | None = Field(
        None, description="Cartesia API key; set it to offer provider 'cartesia'."
    )
    cartesia_base_url: str | None = Field(None, description="Cartesia API base URL.")
    cloud_max_attempts: int = Field(
        4, ge=1, le=10, description="Attempts per cloud synthesis (429/5xx are retried)."
    )
    cloud_deadline_seconds: float = Field(
        15.0, gt=0, description="Time a cloud synthesis may take in all, retries included."
    )
    cloud_attempt_timeout_seconds: float = Field(
        10.0, gt=0, description="Time one cloud request may take."
    )
    # -- engine pools: what a burst of misses may take (tts/pool.py) ----------------------
    piper_concurrency: int = Field(
        0,
        ge=0,
        description="Piper syntheses running at once; 0 = one per CPU core. Each uses one "
        "core and up to a few hundred MB, so more than the cores only adds memory and latency.",
    )
    espeak_concurrency: int = Field(
        0,
        ge=0,
        description="espeak-ng processes running at once; 0 = two per CPU core (a process "
        "is short and partly waits on pipes, so a little more than the cores keeps them busy).",
    )
    cloud_concurrency: int = Field(
        16,
        ge=1,
        description="Requests in flight at once per cloud provider (and any other engine): "
        "they cost us little but count against the provider's rate limit.",
    )
    engine_queue_per_slot: int = Field(
        8,
        ge=0,
        description="Requests that may wait for an engine, per concurrent slot; past that a "
        "miss is answered 503 ENGINE_BUSY at once rather than queued behind work it cannot "
        "outlast.",
    )
    engine_start_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Longest wait for an engine slot; then 503 ENGINE_BUSY with Retry-After "
        "(a caller waiting longer is better told to come back).",
    )
    engine_synthesis_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest one synthesis (or stream) may run once started; then it is "
        "abandoned, nothing is stored and the caller gets 504 SYNTHESIS_TIMEOUT. The longest "
        "text (max_text_chars) takes Piper about 30 s on one core.",
    )
    engine_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="How much lower the CPU priority of engine threads (Piper) and processes "
        "(espeak-ng) is than the server's, so the event loop answering hits is served first.",
    )
    piper_max_piece_chars: int = Field(
        300,
        ge=20,
        description="Piper synthesizes text longer than this piece by piece, cut at sentence "
        "ends, then clause marks, then spaces; its memory grows with the piece (~1 MB/char).",
    )

    def engine_concurrency(self, provider: str) -> int:
        """Slots of a provider's engine pool, the 0 = per-core defaults worked out."""
        cores = os.cpu_count() or 1
        if provider == "piper":
            return self.piper_concurrency or cores
        if provider == "espeak":
            return self.espeak_concurrency or 2 * cores
        return self.cloud_concurrency

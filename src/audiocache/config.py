"""Settings: one typed object, built at the edge (CLI/app factory) and passed down.

Only this module reads the environment. Every setting is declared once here, with its
default and help text; ``docs/configuration.md`` is checked against these declarations.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIOCACHE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the HTTP server.")
    data_dir: Path = Field(
        Path("./data"),
        description="Folder holding the SQLite database and the blob folder by default.",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy async URL of the metadata database; "
        "default: sqlite+aiosqlite:///<data_dir>/audiocache.db.",
    )
    blob_dir: Path | None = Field(
        None, description="Folder of the content-addressed audio blobs; default: <data_dir>/blobs."
    )
    max_upload_bytes: int = Field(
        6 * MIB, gt=0, description="Largest WAV accepted by the replace-file/details uploads."
    )
    max_text_chars: int = Field(
        5000, gt=0, description="Longest text accepted for synthesis and transcripts."
    )
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
    admission_min_hits: int = Field(
        2,
        ge=1,
        description="Default admission: a synthesized phrase is stored once asked this many "
        "times within the window.",
    )
    admission_window_seconds: int = Field(
        86400, gt=0, description="Default admission window, in seconds."
    )
    hit_flush_seconds: float = Field(
        1.0, gt=0, description="Interval at which in-memory hit counts are written to the database."
    )
    key_cache_seconds: float = Field(
        2.0,
        ge=0,
        description="How long a verified API key is trusted before it is looked up again.",
    )
    hot_path: bool = Field(
        True,
        description="Answer file downloads and runtime-path calls without the generic routing "
        "layer (same handlers, same responses; several times the throughput).",
    )
    gc_grace_seconds: int = Field(
        600,
        ge=0,
        description="Blobs younger than this are never collected by gc (they may belong to a "
        "write in flight).",
    )
    public_url: str | None = Field(
        None,
        description="Base URL clients reach this service at, used in signed sample links; "
        "default: the request's own base URL.",
    )
    signing_secret: str | None = Field(
        None,
        description="Secret (>= 16 characters) that signs expiring sample links; default: a "
        "random secret kept in <data_dir>/signing.key. Set it when instances share no folder.",
    )
    sample_url_ttl_seconds: int = Field(
        300, ge=1, le=7 * 86400, description="How long a voice sample link stays valid."
    )
    workers: int = Field(1, ge=1, description="Number of server worker processes.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'audiocache.db').resolve()}"

    def resolved_signing_secret(self) -> bytes:
        """The configured secret, or one generated once and kept beside the database."""
        if self.signing_secret:
            return self.signing_secret.encode()
        path = self.data_dir / "signing.key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(secrets.token_bytes(32))
        return path.read_bytes()

    def engine_concurrency(self, provider: str) -> int:
        """Slots of a provider's engine pool, the 0 = per-core defaults worked out."""
        cores = os.cpu_count() or 1
        if provider == "piper":
            return self.piper_concurrency or cores
        if provider == "espeak":
            return self.espeak_concurrency or 2 * cores
        return self.cloud_concurrency

    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()


def settings_markdown() -> str:
    """docs/configuration.md, derived from the declarations above (a test keeps them equal)."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable (prefix `AUDIOCACHE_`); `audiocache serve`",
        "also takes `--host`, `--port`, `--data-dir` and `--workers`. Defaults run everything on",
        "SQLite and a local folder inside the data directory. This page is generated by",
        "`audiocache settings --markdown`.",
        "",
        "| variable | default | what it does |",
        "|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        default = "(unset)" if field.default is None else str(field.default)
        if name == "data_dir":
            default = "./data"
        lines.append(f"| `AUDIOCACHE_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(lines) + "\n"

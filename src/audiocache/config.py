"""Settings: one typed object, built at the edge (CLI/app factory) and passed down.

Only this module reads the environment. Every setting is declared once here, with its
default and help text; ``docs/configuration.md`` is checked against these declarations.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

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
    database_busy_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a SQLite write waits for another writer's lock before it "
        "gives up (503; the runtime path then answers without storing). Writes hold the lock "
        "for milliseconds, so 30 s is only reached when something is stuck.",
    )
    blob_dir: Path | None = Field(
        None, description="Folder of the content-addressed audio blobs; default: <data_dir>/blobs."
    )
    blob_url: str | None = Field(
        None,
        description="Object storage for the audio blobs, as s3://bucket/prefix (any "
        "S3-compatible server); default: the local blob folder.",
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint, e.g. http://127.0.0.1:7480; default: AWS for the region."
    )
    s3_region: str = Field("us-east-1", description="S3 region (signing and endpoint).")
    s3_access_key_id: str | None = Field(None, description="S3 access key id.")
    s3_secret_access_key: SecretStr | None = Field(None, description="S3 secret access key.")
    s3_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Time one S3 request may take before the blob store counts as "
        "unavailable (503); S3 answers in milliseconds when healthy.",
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
    eviction_interval_seconds: float = Field(
        60.0,
        gt=0,
        description="Interval of the background evictor (limits and TTLs are enforced this "
        "often; storage may exceed a limit by what one interval writes).",
    )
    eviction_batch_size: int = Field(
        500,
        ge=1,
        le=1000,
        description="Entries the evictor deletes per transaction; small enough that a batch "
        "holds the database for milliseconds, and its blobs fit one sweep (1000).",
    )
    eviction_policy: Literal["lru", "lfu"] = Field(
        "lru",
        description="Eviction order of agents whose policy names none, and of the "
        "installation-wide cap: lru (oldest last hit first) or lfu (fewest hits first).",
    )
    eviction_agent_max_entries: int | None = Field(
        None,
        ge=1,
        description="Per-agent quota of entries; an agent's maxEntries can only lower it. "
        "Unset: no installation quota.",
    )
    eviction_agent_max_bytes: int | None = Field(
        None,
        ge=1,
        description="Per-agent quota of audio bytes; an agent's maxBytes can only lower it. "
        "Unset: no installation quota.",
    )
    eviction_ttl_seconds: int | None = Field(
        None,
        ge=1,
        description="TTL applied to every agent's entries (besides the agent's own ttlSeconds: "
        "an entry goes once either expires). Unset: no installation TTL.",
    )
    eviction_ttl_from: Literal["cached", "last_hit"] = Field(
        "cached",
        description="What the installation TTL counts from: cached (cachedAt) or last_hit "
        "(sliding; a never-hit entry counts from cachedAt).",
    )
    eviction_total_max_entries: int | None = Field(
        None,
        ge=1,
        description="Cap on entries across all agents, evicted in eviction_policy order over "
        "every agent's entries. Unset: no cap.",
    )
    eviction_total_max_bytes: int | None = Field(
        None,
        ge=1,
        description="Cap on audio bytes across all agents (each entry's size; blobs shared by "
        "entries count once per entry). Unset: no cap.",
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
        description="Base URL clients reach this service at, used in signed sample links. "
        "Unset: the request's own base URL if its Host is a trusted host, else the address "
        "the connection reached (never an arbitrary Host header).",
    )
    trusted_hosts: str = Field(
        "localhost,127.0.0.1,::1",
        description="Comma-separated host names a request's Host header may name to be used "
        "in sample links when no public URL is set ('*' trusts any); the bind host is always "
        "trusted. Default: loopback only, so a forged Host cannot plant a foreign link.",
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

    def trusted_host_names(self) -> frozenset[str]:
        """Lower-case host names (no port) trusted in a Host header, the bind host included."""
        names = {n.strip().strip("[]").lower() for n in self.trusted_hosts.split(",")}
        return frozenset(n for n in {*names, self.host.strip("[]").lower()} if n)

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

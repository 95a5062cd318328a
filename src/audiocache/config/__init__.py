"""Settings: one typed object, built at the edge (CLI/app factory) and passed down.

Only this package reads the environment. Every setting is declared once, with its default
and help text — here, and the engines' in ``engines.py`` —; ``docs/configuration.md`` is
checked against these declarations.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from audiocache.config.engines import EngineSettings

MIB = 1024 * 1024
WORKER_SETTINGS_ENV = "AUDIOCACHE_WORKER_SETTINGS_JSON"
_S3_NEEDED = ("blob_url", "s3_access_key_id", "s3_secret_access_key")


def default_data_dir() -> Path:
    """Where the data lives when no setting says: ``$XDG_DATA_HOME/audiocache``, else
    ``~/.local/share/audiocache`` — the same for the server and every command, wherever
    they are started from."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "audiocache"


class Settings(EngineSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIOCACHE_", extra="ignore")

    host: str = Field("127.0.0.1", description="Interface the HTTP server binds to.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port of the HTTP server.")
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir(),
        description="Folder holding the SQLite database and the blob folder by default "
        "(`--data-dir`); never the current folder unless given so.",
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
    database_write_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="How many times a write transaction that PostgreSQL aborted as a "
        "deadlock or serialization failure is run in all before the request gets a 503. "
        "Writes take their locks in one order, so an abort is rare and a second attempt "
        "nearly always goes through; each waits a few jittered milliseconds more.",
    )
    sweep_batch_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Queued blobs one sweep transaction checks and removes after a delete "
        "(one query per referring table for the batch, not a transaction per blob); on "
        "PostgreSQL each holds one advisory lock until the commit.",
    )
    sweep_delete_concurrency: int = Field(
        16,
        ge=1,
        le=256,
        description="Objects of one sweep batch deleted from the blob store at once: the "
        "batch's blob locks are held until its commit, so a writer of one of them waits "
        "for about one round trip to the store rather than one per object.",
    )
    database_read_threads: int = Field(
        4,
        ge=1,
        le=64,
        description="Threads of their own that run SQLite's list pages, counts and searches "
        "(the hot path's point lookups run on the event loop): at most this many such reads "
        "at once per process; more wait their turn instead of taking the threads that file "
        "and engine work share.",
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
    lease_seconds: float = Field(
        10.0,
        gt=0,
        description="Single flight across instances: how long a synthesis lease lasts without "
        "renewal (renewed every third of it while synthesizing). An instance killed while "
        "synthesizing delays the others' takeover by at most this. The evictor's lease (one "
        "evictor at a time across instances) lasts as long.",
    )
    lease_poll_seconds: float = Field(
        0.05,
        gt=0,
        le=5,
        description="How often a request waiting for another instance's synthesis looks for "
        "its entry (a point read each time).",
    )
    lease_wait_seconds: float = Field(
        140.0,
        gt=0,
        description="Longest wait for another instance's synthesis before synthesizing "
        "anyway (above the engine start + synthesis deadlines, so it only trips on a hang).",
    )
    max_lease_waiters: int = Field(
        32,
        ge=1,
        description="Most phrases one instance may be waiting for at once while other "
        "instances synthesize them (requests for one phrase share one wait; each wait polls "
        "the database every lease_poll_seconds: 32 x 20/s = 640 point reads/s at most). One "
        "more gets 503 LEASE_WAITERS_BUSY with Retry-After.",
    )
    max_upload_bytes: int = Field(
        6 * MIB, gt=0, description="Largest WAV accepted by the replace-file/details uploads."
    )
    # -- request edges: what one connection or request may hold, and for how long ----------
    head_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="A connection that has not sent a complete request head this long after "
        "it opened (or after its last response) is closed. Real clients send the head in one "
        "packet; 10 s allows a very slow link while a slowloris connection costs at most 10 s.",
    )
    max_header_count: int = Field(
        100,
        ge=1,
        description="Most header fields a request may have (more: 431, connection closed). "
        "Apache's limit; a client of this API sends about ten.",
    )
    max_head_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="Largest request head (request line and headers) in bytes (larger: 431, "
        "connection closed). nginx's default buffers hold 32 KiB; the API needs under 4 KiB.",
    )
    body_idle_timeout_seconds: float = Field(
        15.0,
        gt=0,
        description="A request body that sends no bytes for this long is dropped (408, "
        "connection closed, memory and spool file freed). TCP recovers from loss in a few "
        "seconds; 15 s of silence means a dead or hostile client.",
    )
    body_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest time a request body may take in all (then 408, connection "
        "closed): a 6 MiB upload needs a link of about 0.4 Mbit/s to arrive in 120 s.",
    )
    max_concurrent_uploads: int = Field(
        8,
        ge=1,
        description="Uploads (replace file/details) read at once per worker; more get 503 "
        "UPLOADS_BUSY with Retry-After. Uploads are human curation, rarely more than a few at "
        "once; 8 bounds their memory to 8 x max_upload_bytes (48 MiB) while they are stored.",
    )
    upload_spool_bytes: int = Field(
        256 * 1024,
        ge=1,
        description="An upload larger than this is spooled to a temporary file while it "
        "arrives instead of held in memory, so a slow or stalled upload costs at most this "
        "much memory (256 KiB: a few seconds of speech).",
    )
    upload_spool_dir: Path | None = Field(
        None,
        description="Folder of the temporary files of uploads in progress (unlinked files, "
        "gone even after a crash); default: <data_dir>/spool, on disk rather than a tmpfs.",
    )
    max_text_chars: int = Field(
        5000, gt=0, description="Longest text accepted for synthesis and transcripts."
    )
    max_word_timestamps: int = Field(
        300,
        ge=0,
        le=2000,
        description="Most word timestamps the runtime store keeps with one take (the plugins "
        "store a sentence or a clause at a time: tens of words); the lookup returns them in "
        "one header, which 300 words keep under 8 kB. More: 400 INVALID_SETTINGS.",
    )
    transcode_concurrency: int = Field(
        2,
        ge=1,
        le=64,
        description="Audio conversions (resampling; MP3, Opus and FLAC encoding) run at once "
        "per worker, in threads; more wait their turn. One 5 s phrase takes a few ms.",
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
    take_history_limit: int = Field(
        5,
        ge=0,
        le=100,
        description="Earlier takes kept per entry (replace, replace-with-settings, regenerate "
        "and restore keep the take they replace); the oldest beyond it is dropped and its "
        "blob collected. 0 keeps none.",
    )
    transfer_max_archive_bytes: int = Field(
        2 * 1024 * MIB,
        gt=0,
        description="Largest archive accepted by the import and takes-upload routes (spooled "
        "to disk while it arrives, refused as soon as it passes this).",
    )
    transfer_max_file_bytes: int = Field(
        64 * MIB,
        gt=0,
        description="Largest WAV inside an import archive or a takes upload; each is held in "
        "memory once while it is verified and stored, so this bounds an import's memory.",
    )
    transfer_max_manifest_bytes: int = Field(
        64 * MIB,
        gt=0,
        description="Largest manifest of an import archive (about 100,000 entries) and mapping "
        "file of a takes upload; read whole into memory.",
    )
    audit_flush_seconds: float = Field(
        1.0,
        gt=0,
        description="Interval at which audit-log events (one per write request) are written "
        "to the database in one batch; a crash loses at most this interval's events.",
    )
    audit_queue_max: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Audit-log events held in memory per worker; a write request that "
        "finds this many waiting writes them before it goes on.",
    )
    audit_retention_days: int = Field(
        90,
        ge=1,
        le=3650,
        description="Audit-log events older than this many days are deleted by a background sweep.",
    )
    audit_sweep_seconds: float = Field(
        3600.0,
        gt=0,
        description="Interval of the audit-log retention sweep (also run at start-up).",
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
        0.0,
        ge=0,
        description="How long a verified API key is trusted before it is looked up again. "
        "0 (the default): every request looks it up (one indexed read), so a revoked key is "
        "refused at once by every instance; a positive value lets it work that long.",
    )
    hot_path: bool = Field(
        True,
        description="Answer file downloads and runtime-path calls without the generic routing "
        "layer (same handlers, same responses; several times the throughput).",
    )
    hot_lane: bool = Field(
        True,
        description="Answer a download or a runtime-path hit whose answer the hot path's "
        "memo holds whole (bytes in memory) in the HTTP server's protocol itself, without "
        "starting an ASGI request (same status, headers, body, counting and access log); a "
        "plain request that arrives whole in one read, before the HTTP parser sees it. "
        "SQLite only (PostgreSQL's change marker takes a round trip); needs hot_path; off "
        "with offload=x-accel-redirect (nginx sends every such answer).",
    )
    hot_lane_open_files: int = Field(
        256,
        ge=0,
        le=65536,
        description="Blob files the hot lane keeps open to send with sendfile (least "
        "recently used closed first); 0: it sends the bytes from memory.",
    )
    hot_lane_hold_seconds: float = Field(
        0.25,
        gt=0,
        le=10,
        description="How long a request the hot lane may answer waits for the rest of its "
        "small body (at most 4 KiB) before it goes the usual way, with its own body timeouts.",
    )
    hot_memo_entries: int = Field(
        10_000,
        ge=0,
        description="How many answers of the hot path (keys, agents, entries, prepared "
        "responses) are kept in process while the database is unchanged; any commit, on any "
        "instance, empties it before the next request uses it. 0: no memo.",
    )
    hot_memo_bytes: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Blob bytes the hot path keeps in memory (least recently used dropped "
        "first; a blob over a sixteenth of this is always read from storage). 0: none.",
    )
    offload: Literal["off", "x-accel-redirect", "s3-presigned"] = Field(
        "off",
        description="x-accel-redirect: an authorized download or runtime-path hit of a blob "
        "in the local blob folder is answered with its headers and an X-Accel-Redirect to "
        "offload_location, and nginx sends the file (sendfile, its own byte ranges); see "
        "deploy/nginx-offload.conf. Only behind such an nginx: a client reaching the "
        "service directly gets an empty body. s3-presigned (s3:// blob_url only): an "
        "authorized download is a 307 to a presigned S3 GET valid offload_presign_seconds "
        "(runtime-path hits still get the bytes); see docs/deploy.md.",
    )
    offload_presign_seconds: int = Field(
        60,
        ge=1,
        le=3600,
        description="How long a presigned URL of offload=s3-presigned is valid (seconds): long "
        "enough to follow the redirect, short because whoever holds the URL can fetch the audio.",
    )
    offload_location: str = Field(
        "/_audiocache_blobs/",
        pattern=r"^/([A-Za-z0-9_.-]+/)+$",
        description="The internal nginx location (alias of the blob folder) X-Accel-Redirect "
        "points to: the blob <sha[:2]>/<sha> under it.",
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
    trusted_proxies: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated addresses or networks (CIDR, e.g. 10.0.0.0/8) of the "
        "reverse proxies in front of the server. A request whose connection comes from one "
        "is audited with the address its X-Forwarded-For names (the rightmost one that is "
        "not a trusted proxy) and takes its scheme from X-Forwarded-Proto. '*' trusts every "
        "peer (and the leftmost address, as the client wrote it); empty trusts none (the "
        "connection's peer is the address). Default: loopback, so nginx on the same host is "
        "seen through and a client reaching the port itself cannot forge its address.",
    )
    signing_secret: str | None = Field(
        None,
        description="Secret (>= 16 characters) that signs expiring sample links; default: a "
        "random secret kept in <data_dir>/signing.key. Set it when instances share no folder.",
    )
    sample_url_ttl_seconds: int = Field(
        300, ge=1, le=7 * 86400, description="How long a voice sample link stays valid."
    )
    prices_usd_per_million_characters: dict[str, float] = Field(
        {
            "eleven_labs": 180.0,
            "openai": 15.0,
            "google": 16.0,
            "microsoft": 15.0,
            "cartesia": 40.0,
            "espeak": 0.0,
            "piper": 0.0,
        },
        description="What a provider charges per million characters (USD), for the stats' "
        "money saved (characters served from the cache times price). Defaults: the providers' "
        "published pay-as-you-go list prices of their standard neural voices (approximate; "
        'set yours as JSON, e.g. {"openai": 30}); local engines and unlisted providers: 0.',
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token GET /metrics asks for (Authorization: Bearer …). Unset "
        "(the default): /metrics is open on the listening address, like most exporters; "
        "bind to a private interface or set a token when that address is reachable.",
    )
    access_log: bool = Field(
        True,
        description="One JSON line per request on the audiocache.access logger (method, route "
        "template, status, duration ms, correlation id, key id; never the key itself).",
    )
    readiness_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long GET /readyz waits for the database and the blob store each "
        "before it answers 503.",
    )
    workers: int = Field(1, ge=1, description="Number of server worker processes.")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")

    @field_validator("offload")
    @classmethod
    def _offload_fits_the_blob_store(cls, offload: str, info: ValidationInfo) -> str:
        """Refused at start-up (a field's check: its error shows no other value, a secret)."""
        blob_url, key, secret = (info.data.get(f) for f in _S3_NEEDED)
        s3 = (blob_url or "").startswith("s3://")
        if offload == "s3-presigned" and not (s3 and key and secret):
            where = "the S3 access keys are not set" if s3 else "AUDIOCACHE_BLOB_URL is not s3://"
            raise ValueError(
                "AUDIOCACHE_OFFLOAD=s3-presigned needs AUDIOCACHE_BLOB_URL=s3://... and "
                f"AUDIOCACHE_S3_ACCESS_KEY_ID/_SECRET_ACCESS_KEY, but {where} (with a local "
                "blob folder behind nginx, use AUDIOCACHE_OFFLOAD=x-accel-redirect)"
            )
        return offload

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

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        for item in (part.strip() for part in value.split(",")):
            if item and item != "*":
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"trusted_proxies: {item!r} is not an address or network"
                    ) from None
        return value

    def trusted_proxy_list(self) -> list[str]:
        """The trusted proxies' addresses and networks (``*``: any), as uvicorn takes them."""
        return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]

    def trusted_host_names(self) -> frozenset[str]:
        """Lower-case host names (no port) trusted in a Host header, the bind host included."""
        names = {n.strip().strip("[]").lower() for n in self.trusted_hosts.split(",")}
        return frozenset(n for n in {*names, self.host.strip("[]").lower()} if n)

    def resolved_blob_dir(self) -> Path:
        return (self.blob_dir or self.data_dir / "blobs").resolve()

    def resolved_upload_spool_dir(self) -> Path:
        return (self.upload_spool_dir or self.data_dir / "spool").resolve()

    def worker_environ(self) -> dict[str, str]:
        """The environment that hands these settings, secrets included, to a worker process.

        One JSON variable, not one variable per setting: ``str()`` of a secret is its mask,
        and a round trip through JSON keeps every type as validated here."""
        values = self.model_dump(mode="json")
        for name in values:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                values[name] = value.get_secret_value()
        return {WORKER_SETTINGS_ENV: json.dumps(values)}

    @classmethod
    def for_worker(cls) -> Settings:
        """In a worker process: the settings its parent handed over, else the environment's."""
        handed = os.environ.get(WORKER_SETTINGS_ENV)
        return cls(**json.loads(handed)) if handed else cls()


def settings_markdown() -> str:
    """docs/configuration.md, derived from the declarations above (a test keeps them equal)."""
    lines = [
        "# Configuration",
        "",
        "Every setting is an environment variable (prefix `AUDIOCACHE_`); `audiocache serve`",
        "also takes `--host`, `--port`, `--data-dir` and `--workers`. Defaults run everything on",
        "SQLite and a local folder inside the data directory. This page is generated by",
        "`audiocache settings --markdown`. The data directory is `AUDIOCACHE_DATA_DIR` (or",
        "`--data-dir`), else `$XDG_DATA_HOME/audiocache`, else `~/.local/share/audiocache`.",
        "Commands that talk to a running server instead take `--url`/`AUDIOCACHE_URL` and",
        "`--key`/`AUDIOCACHE_KEY` (see the README).",
        "",
        "| variable | default | what it does |",
        "|---|---|---|",
    ]
    fields = Settings.model_fields
    own = [name for name in Settings.__annotations__ if name in fields]  # in declared order
    for name in [*own, *(name for name in fields if name not in own)]:
        field = fields[name]
        default = "(unset)" if field.default is None else str(field.default)
        if name == "data_dir":
            default = "$XDG_DATA_HOME/audiocache"
        lines.append(f"| `AUDIOCACHE_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(lines) + "\n"

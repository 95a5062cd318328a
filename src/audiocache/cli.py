"""The ``audiocache`` command: serve, keys, agents, check, gc — all on the same services."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from audiocache.auth import validate_grants
from audiocache.cache.agents import EvictionPolicy
from audiocache.cache.warmup import WarmReport, parse_phrases, warm_up
from audiocache.cli_cache import cache_app
from audiocache.config import Settings, settings_markdown
from audiocache.errors import AudioCacheError
from audiocache.models import Agent
from audiocache.services import Services, build_services
from audiocache.storage import gc

app = typer.Typer(help="Self-hosted TTS audio cache for voice agents.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)
agents_app = typer.Typer(help="Agents: list, create, set the cache policy.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(agents_app, name="agents")
app.add_typer(cache_app, name="cache")
console = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data folder (env AUDIOCACHE_DATA_DIR).")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AccountOption = Annotated[
    str | None,
    typer.Option(help="The agent's account (needed when several accounts use that agent id)."),
]


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _with_services(
    settings: Settings, work: Callable[[Services], Awaitable[T]], *, engines: bool = False
) -> T:
    """Run one async job against freshly built (and migrated) services, then close them.

    Engines are only started for commands that synthesize."""

    async def main() -> T:
        services = build_services(settings, engines=None if engines else [])
        if engines:
            await services.start()
        else:
            await services.db.migrate()
        try:
            return await work(services)
        finally:
            await services.stop()

    return anyio.run(main)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (AUDIOCACHE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AUDIOCACHE_PORT).")] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Run the HTTP API (creates and migrates the database on first start)."""
    from audiocache.server import serve as run_server

    settings = _settings(data_dir, host=host, port=port, workers=workers)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"audiocache on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir.resolve()})"
    )
    run_server(settings)


@app.command("settings")
def show_settings(
    data_dir: DataDir = None,
    markdown: Annotated[bool, typer.Option(help="Print the settings reference instead.")] = False,
) -> None:
    """Print the effective settings (secrets masked), or the reference with --markdown."""
    if markdown:
        print(settings_markdown(), end="")
        return
    settings = _settings(data_dir)
    for name, value in settings.model_dump().items():
        secret = name.endswith("_api_key") or name.endswith("_secret")
        shown = "********" if secret and value is not None else value
        print(f"AUDIOCACHE_{name.upper()}={'' if shown is None else shown}")


@app.command()
def init(data_dir: DataDir = None) -> None:
    """Create the data folder and migrate the database."""
    settings = _settings(data_dir)
    _with_services(settings, _noop)
    console.print(f"initialised {settings.data_dir.resolve()}")


async def _noop(_services: Services) -> None:
    return None


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account the key belongs to.")],
    grant: Annotated[list[str], typer.Option(help="Permission, e.g. audio_cache:read; repeat.")],
    label: Annotated[str, typer.Option(help="A note to tell keys apart.")] = "",
    data_dir: DataDir = None,
) -> None:
    """Create a key; the key is printed once, as the last line (only its hash is kept)."""
    try:
        grants = validate_grants(grant)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--grant") from exc

    async def work(services: Services) -> tuple[Any, str]:
        return await services.keys.create(account, grants, label)

    record, key = _with_services(_settings(data_dir), work)
    console.print(f"key id {record.key_id} for account {account}: {' '.join(sorted(grants))}")
    print(key)


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """List keys (never the keys themselves)."""

    async def work(services: Services) -> list[Any]:
        return await services.keys.list_keys(account)

    rows = [
        {
            "keyId": k.key_id,
            "account": k.account_id,
            "grants": sorted(k.grants),
            "label": k.label,
            "createdAt": k.created_at.isoformat(),
            "revoked": k.revoked_at is not None,
        }
        for k in _with_services(_settings(data_dir), work)
    ]
    _present(rows, as_json, title="API keys")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by its key id; requests with it get 401 from then on."""

    async def work(services: Services) -> bool:
        return await services.keys.revoke(key_id)

    if not _with_services(_settings(data_dir), work):
        console.print(f"no active key with id {key_id}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


@agents_app.command("list")
def agents_list(account: str, data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """List an account's agents."""

    async def work(services: Services) -> list[Any]:
        return await services.agents.list_for_account(account)

    rows = [
        {"agentId": a.public_id, "name": a.name, "voice": a.voice_id, "admission": a.admission}
        for a in _with_services(_settings(data_dir), work)
    ]
    _present(rows, as_json, title=f"Agents of {account}")


@agents_app.command("create")
def agents_create(
    account: Annotated[str, typer.Option(help="Owning account.")],
    name: Annotated[str, typer.Option(help="Agent name.")],
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="Id (default: generated).")
    ] = None,
    voice: Annotated[str | None, typer.Option(help="Default voice, e.g. en-us.")] = None,
    language: Annotated[str, typer.Option(help="Language code.")] = "en-GB",
    data_dir: DataDir = None,
) -> None:
    """Create an agent; prints its id."""

    async def work(services: Services) -> Any:
        return await services.agents.create(
            account,
            agent_id=agent_id,
            name=name,
            greeting=name,
            language_code=language,
            voice_id=voice,
        )

    print(_with_services(_settings(data_dir), work).public_id)


_LIMIT_HELP = "Keep the current value if not given; 'none' removes the limit."


@agents_app.command("policy")
def agents_policy(
    agent_id: str,
    admission: Annotated[str, typer.Argument(help="default | always | never | min_hits")],
    min_hits: Annotated[int | None, typer.Option(help="With min_hits.")] = None,
    window_seconds: Annotated[int | None, typer.Option(help="With min_hits.")] = None,
    max_entries: Annotated[str | None, typer.Option(help=f"Most entries. {_LIMIT_HELP}")] = None,
    max_bytes: Annotated[str | None, typer.Option(help=f"Most bytes. {_LIMIT_HELP}")] = None,
    eviction: Annotated[str | None, typer.Option(help=f"lru | lfu. {_LIMIT_HELP}")] = None,
    ttl_seconds: Annotated[str | None, typer.Option(help=f"TTL. {_LIMIT_HELP}")] = None,
    ttl_from: Annotated[str | None, typer.Option(help=f"cached | last_hit. {_LIMIT_HELP}")] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
) -> None:
    """Set when an agent's synthesized phrases are stored, and when they are evicted."""
    given = {
        "max_entries": _int_or_none(max_entries, "--max-entries"),
        "max_bytes": _int_or_none(max_bytes, "--max-bytes"),
        "eviction": _none_or(eviction),
        "ttl_seconds": _int_or_none(ttl_seconds, "--ttl-seconds"),
        "ttl_from": _none_or(ttl_from),
    }
    changes = {name: value for name, value in given.items() if value is not _KEEP}

    async def work(services: Services) -> EvictionPolicy:
        agent = await _agent(services, agent_id, account)
        limits = replace(EvictionPolicy.of(agent), **changes)
        await services.agents.set_policy(agent, admission, min_hits, window_seconds, limits)
        return limits

    limits = _with_services(_settings(data_dir), work)
    shown = ", ".join(f"{k} {'none' if v is None else v}" for k, v in asdict(limits).items())
    console.print(f"{agent_id}: admission {admission}; {shown}")


_KEEP: Any = object()


def _none_or(value: str | None) -> Any:
    if value is None:
        return _KEEP
    return None if value.lower() == "none" else value


def _int_or_none(value: str | None, option: str) -> Any:
    parsed = _none_or(value)
    if parsed is _KEEP or parsed is None:
        return parsed
    try:
        return int(parsed)
    except ValueError:
        raise typer.BadParameter(
            f"{parsed!r} is not a whole number or 'none'", param_hint=option
        ) from None


@app.command()
def warm(
    file: Annotated[typer.FileText, typer.Argument(help="Phrases: one a line, or JSON lines.")],
    agent: Annotated[str, typer.Option(help="Agent to warm.")],
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Syntheses at once.")] = 4,
    account: AccountOption = None,
    data_dir: DataDir = None,
) -> None:
    """Synthesize and pin phrases ahead of time; run it again to finish what is left."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    phrases, problems = parse_phrases(file)
    for line, reason in problems:
        console.print(f"line {line}: {reason}")

    async def work(services: Services) -> WarmReport:
        found = await _agent(services, agent, account)
        columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("warming", total=len(phrases))
            return await warm_up(
                services.cache,
                found,
                phrases,
                concurrency=concurrency,
                on_done=lambda _phrase, _created: progress.advance(task),
            )

    report = _with_services(_settings(data_dir), work, engines=True)
    for line, reason in report.failed:
        console.print(f"line {line}: {reason}")
    console.print(
        f"{report.synthesized} synthesized, {report.already_cached} already cached, "
        f"{len(report.failed) + len(problems)} failed"
    )
    print(
        json.dumps(
            {
                "synthesized": report.synthesized,
                "alreadyCached": report.already_cached,
                "failed": len(report.failed) + len(problems),
            }
        )
    )
    if report.failed or problems:
        raise typer.Exit(1)


@app.command()
def regenerate(
    entry_ids: Annotated[list[int], typer.Argument(help="Entry ids to synthesize again.")],
    agent: Annotated[str, typer.Option(help="The entries' agent.")],
    account: AccountOption = None,
    data_dir: DataDir = None,
) -> None:
    """Synthesize entries again in place with their voice and settings."""

    async def work(services: Services) -> int:
        found = await _agent(services, agent, account)
        failed = 0
        for entry_id in entry_ids:
            try:
                entry = await services.curation.get_entry(found.id, entry_id)
                await services.curation.regenerate(entry)
                console.print(f"{entry_id}: regenerated")
            except AudioCacheError as exc:
                failed += 1
                console.print(f"{entry_id}: {exc.message}")
        return failed

    if _with_services(_settings(data_dir), work, engines=True):
        raise typer.Exit(1)


@app.command()
def check(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Compare rows with blobs; exits 1 if a row lacks its blob or a blob lacks a row."""
    settings = _settings(data_dir)

    async def work(services: Services) -> gc.Report:
        return await gc.check(services.db, services.blobs, settings.gc_grace_seconds)

    report = _with_services(settings, work)
    _present_report(report, as_json)
    if not report.healthy:
        raise typer.Exit(1)


@app.command("gc")
def collect(
    data_dir: DataDir = None,
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="Keep unreferenced blobs younger than this (a write may be in flight)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Finish queued deletes and remove blobs no entry refers to."""
    settings = _settings(data_dir)
    grace = settings.gc_grace_seconds if grace_seconds is None else grace_seconds

    async def work(services: Services) -> gc.Report:
        return await gc.collect(services.db, services.blobs, grace)

    report = _with_services(settings, work)
    _present_report(report, as_json)
    if report.rows_without_blob:
        raise typer.Exit(1)


async def _agent(services: Services, agent_id: str, account: str | None) -> Agent:
    """An agent named on the command line; exit 1 with the reason if it is unknown or the
    id is used in several accounts and no --account says which."""
    try:
        return await services.agents.named(agent_id, account)
    except AudioCacheError as exc:
        console.print(exc.message)
        raise typer.Exit(1) from exc


def _present_report(report: gc.Report, as_json: bool) -> None:
    data = {
        "entries": report.entries,
        "blobs": report.blobs,
        "pending": report.pending,
        "rowsWithoutBlob": report.rows_without_blob,
        "blobsWithoutRow": report.blobs_without_row,
        "swept": report.swept,
        "collected": report.collected,
        "tempFilesRemoved": report.temp_files_removed,
    }
    if as_json:
        print(json.dumps(data))
        return
    for name, value in data.items():
        console.print(f"{name:>16}: {value if not isinstance(value, list) else len(value)}")


def _present(rows: list[dict[str, Any]], as_json: bool, *, title: str) -> None:
    if as_json or not sys.stdout.isatty():
        print(json.dumps(rows, indent=None if not sys.stdout.isatty() else 2))
        return
    table = Table(title=title)
    for column in rows[0] if rows else ["(none)"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


def main() -> None:
    app()

"""Commands on the installation itself (always the data folder): serve, settings, init,
keys, check, gc. No API route does these (keys have none), so they have no --url."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from audiocache.auth import validate_grants
from audiocache.cli.common import (
    AsJson,
    DataDir,
    console,
    existing,
    guarded,
    present,
    settings_for,
    with_services,
)
from audiocache.config import settings_markdown
from audiocache.services import Services
from audiocache.storage import gc

keys_app = typer.Typer(help="API keys: create, list, revoke.", no_args_is_help=True)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (AUDIOCACHE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (AUDIOCACHE_PORT).")] = None,
    data_dir: DataDir = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
) -> None:
    """Run the HTTP API (creates and migrates the database on first start)."""
    from audiocache.server import serve as run_server

    settings = settings_for(data_dir, host=host, port=port, workers=workers)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    console.print(
        f"audiocache on http://{settings.host}:{settings.port} "
        f"(data: {settings.data_dir.resolve()})"
    )
    run_server(settings)


def show_settings(
    data_dir: DataDir = None,
    markdown: Annotated[bool, typer.Option(help="Print the settings reference instead.")] = False,
) -> None:
    """Print the effective settings (secrets masked), or the reference with --markdown."""
    if markdown:
        print(settings_markdown(), end="")
        return
    settings = settings_for(data_dir)
    for name, value in settings.model_dump().items():
        secret = name.endswith("_api_key") or name.endswith("_secret")
        shown = "********" if secret and value is not None else value
        print(f"AUDIOCACHE_{name.upper()}={'' if shown is None else shown}")


def init(data_dir: DataDir = None) -> None:
    """Create the data folder and migrate the database."""
    settings = settings_for(data_dir)
    with_services(settings, _noop)
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

    record, key = with_services(settings_for(data_dir), work)
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

    settings = guarded(lambda: existing(settings_for(data_dir)))
    rows = [
        {
            "keyId": k.key_id,
            "account": k.account_id,
            "grants": sorted(k.grants),
            "label": k.label,
            "createdAt": k.created_at.isoformat(),
            "revoked": k.revoked_at is not None,
        }
        for k in with_services(settings, work)
    ]
    present(rows, as_json, title="API keys")


@keys_app.command("revoke")
def keys_revoke(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by its key id; requests with it get 401 from then on."""

    async def work(services: Services) -> bool:
        return await services.keys.revoke(key_id)

    settings = guarded(lambda: existing(settings_for(data_dir)))
    if not with_services(settings, work):
        console.print(f"no active key with id {key_id}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")


def check(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Compare rows with blobs; exits 1 if a row lacks its blob or a blob lacks a row."""
    settings = guarded(lambda: existing(settings_for(data_dir)))

    async def work(services: Services) -> gc.Report:
        return await gc.check(services.db, services.blobs, settings.gc_grace_seconds)

    report = with_services(settings, work)
    _present_report(report, as_json)
    if not report.healthy:
        raise typer.Exit(1)


def collect(
    data_dir: DataDir = None,
    grace_seconds: Annotated[
        int | None,
        typer.Option(help="Keep unreferenced blobs younger than this (a write may be in flight)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Finish queued deletes and remove blobs no entry refers to."""
    settings = guarded(lambda: existing(settings_for(data_dir)))
    grace = settings.gc_grace_seconds if grace_seconds is None else grace_seconds

    async def work(services: Services) -> gc.Report:
        return await gc.collect(services.db, services.blobs, grace)

    report = with_services(settings, work)
    _present_report(report, as_json)
    if report.rows_without_blob:
        raise typer.Exit(1)


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


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command("settings")(show_settings)
    app.command()(init)
    app.command()(check)
    app.command("gc")(collect)
    app.add_typer(keys_app, name="keys")

"""What every command shares: options, the data folder, local or remote work, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import typer
from rich.console import Console
from rich.table import Table

from audiocache import client as remote_errors
from audiocache.config import Settings
from audiocache.errors import AudioCacheError
from audiocache.services import Services, build_services

if TYPE_CHECKING:
    from audiocache.cli.targets import Target

console = Console(stderr=True)
T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Data folder (env AUDIOCACHE_DATA_DIR; default $XDG_DATA_HOME/audiocache).",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
AccountOption = Annotated[
    str | None,
    typer.Option(help="The agent's account (needed when several accounts use that agent id)."),
]
Url = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="AUDIOCACHE_URL",
        help="A running server to work on (env AUDIOCACHE_URL) instead of the data folder.",
    ),
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="AUDIOCACHE_KEY", help="API key for --url (env AUDIOCACHE_KEY)."),
]


class CommandError(Exception):
    """A problem to tell in one line on stderr, exit code 1."""


def settings_for(data_dir: Path | None, **overrides: Any) -> Settings:
    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def existing(settings: Settings) -> Settings:
    """The settings of a command that works on data already there: with the default SQLite
    database, its data folder must exist (nothing is created behind the operator's back)."""
    if settings.database_url is None and not (settings.data_dir / "audiocache.db").exists():
        raise CommandError(
            f"no audiocache data in {settings.data_dir} (give --data-dir or AUDIOCACHE_DATA_DIR,"
            " run `audiocache init`, or use --url for a running server)"
        )
    return settings


def with_services(
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

    return guarded(lambda: anyio.run(main))


def on_target(
    url: str | None,
    key: str | None,
    data_dir: Path | None,
    account: str | None,
    work: Callable[[Target], Awaitable[T]],
    *,
    engines: bool = False,
    create: bool = False,
) -> T:
    """Run ``work`` on the server at ``url`` when given, else on the data folder."""
    from audiocache.cli.local import Local
    from audiocache.cli.targets import Remote

    if url:

        async def remote() -> T:
            async with remote_errors.AsyncClient(url, key, on_retry=retry_note) as client:
                return await work(Remote(client))

        return guarded(lambda: anyio.run(remote))
    settings = settings_for(data_dir)
    if not create:
        guarded(lambda: existing(settings))

    async def local(services: Services) -> T:
        return await work(Local(services, account))

    return with_services(settings, local, engines=engines)


def retry_note(_attempt: int, error: remote_errors.AudioCacheError, delay: float) -> None:
    """A remote command's client waits out a busy server: said on stderr (reconnects are
    not)."""
    if isinstance(error, remote_errors.ServiceUnavailable):
        console.print(f"{error}; trying again in {delay:g} s", highlight=False)


def guarded(run: Callable[[], T]) -> T:
    """``run()``, with any error it ends in told in one line (exit 1), never a traceback."""
    try:
        return run()
    except (AudioCacheError, remote_errors.AudioCacheError) as exc:
        code = getattr(exc, "error_code", "")
        fail(exc.message + (f" ({code})" if code else ""))
    except CommandError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
    raise typer.Exit(1)


def fail(message: str) -> None:
    """One line on stderr, unwrapped whatever the terminal's width."""
    typer.echo("error: " + " ".join(message.split()), err=True)


def usage_message(exc: typer.TyperException) -> str:
    """click's message as the rest of a one-line error (``no such option: --foo``), and for
    a usage error (it knows the command) where the command's help is."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = message[:1].lower() + message[1:]
    context = getattr(exc, "ctx", None)
    if context is not None:
        message += f" (see {context.command_path} --help)"
    elif exc.exit_code == 2:  # a usage error raised before the command was known
        message += " (see audiocache --help)"
    return message


def present(rows: list[dict[str, Any]], as_json: bool, *, title: str) -> None:
    if as_json or not sys.stdout.isatty():
        print(json.dumps(rows, indent=None if not sys.stdout.isatty() else 2))
        return
    table = Table(title=title)
    for column in rows[0] if rows else ["(none)"]:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)

"""``audiocache cache …``: an entry's take history from the command line (local mode).

Each command is a small async function of the services returning plain data (``history``,
``restore``), and a typer command that runs it and presents the result, so the same
commands can later be routed through an HTTP client instead of local services.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from audiocache.errors import AudioCacheError
from audiocache.models import Entry, Take
from audiocache.services import Services

T = TypeVar("T")
cache_app = typer.Typer(help="Cache entries: take history, restore.", no_args_is_help=True)


def take_row(take: Take) -> dict[str, Any]:
    return {
        "id": str(take.id),
        "createdAt": take.created_at.isoformat(),
        "reason": take.reason,
        "transcript": take.transcript,
        "duration": round(take.duration, 3),
        "size": take.size_bytes,
        "sha256": take.blob_sha256,
    }


async def _entry(services: Services, agent_id: str, entry_id: int, account: str | None) -> Entry:
    agent = await services.agents.named(agent_id, account)
    return await services.curation.get_entry(agent.id, entry_id)


async def history(
    services: Services, agent_id: str, entry_id: int, account: str | None = None
) -> list[dict[str, Any]]:
    """The entry's earlier takes, newest first."""
    entry = await _entry(services, agent_id, entry_id, account)
    return [take_row(t) for t in await services.history.of_entry(entry)]


async def restore(
    services: Services, agent_id: str, entry_id: int, take_id: int, account: str | None = None
) -> dict[str, Any]:
    """Bring take ``take_id`` back as the entry's audio; returns the entry's new state."""
    entry = await _entry(services, agent_id, entry_id, account)
    restored = await services.history.restore(entry, take_id)
    return {
        "id": str(restored.id),
        "transcript": restored.transcript,
        "sha256": restored.blob_sha256,
        "size": restored.size_bytes,
        "restoredTake": str(take_id),
    }


AgentArg = Annotated[str, typer.Argument(help="The entry's agent (its agentId).")]
EntryArg = Annotated[int, typer.Argument(help="The entry id.")]
Account = Annotated[
    str | None,
    typer.Option(help="The agent's account (needed when several accounts use that agent id)."),
]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Data folder.")]


def _local(data_dir: Path | None, work: Callable[[Services], Awaitable[T]]) -> T:
    """Run ``work`` on local services; a domain error exits 1 with its code and message."""
    from audiocache.cli import _settings, _with_services  # cli imports this module

    try:
        return _with_services(_settings(data_dir), work)
    except AudioCacheError as exc:
        typer.echo(f"{exc.error_code}: {exc.message}", err=True)
        raise typer.Exit(1) from exc


@cache_app.command("history")
def history_command(
    agent: AgentArg,
    entry: EntryArg,
    account: Account = None,
    data_dir: DataDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List an entry's earlier takes, newest first."""
    from audiocache.cli import _present

    rows = _local(data_dir, lambda services: history(services, agent, entry, account))
    _present(rows, as_json, title=f"Takes of entry {entry}")


@cache_app.command("restore")
def restore_command(
    agent: AgentArg,
    entry: EntryArg,
    take: Annotated[int, typer.Argument(help="The take id (from `audiocache cache history`).")],
    account: Account = None,
    data_dir: DataDir = None,
) -> None:
    """Make an earlier take the entry's audio again (the current audio becomes a take)."""
    result = _local(data_dir, lambda services: restore(services, agent, entry, take, account))
    print(json.dumps(result))

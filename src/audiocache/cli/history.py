"""``audiocache cache history|restore``: an entry's earlier takes, on the data folder or a
server (--url/--key); both print the same rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from audiocache.cli.common import AccountOption, AsJson, DataDir, Key, Url, on_target, present

if TYPE_CHECKING:
    from audiocache.cli.targets import Target

AgentArg = Annotated[str, typer.Argument(help="The entry's agent (its agentId).")]
EntryArg = Annotated[str, typer.Argument(help="The entry id.")]


def history_command(
    agent: AgentArg,
    entry: EntryArg,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List an entry's earlier takes, newest first."""

    async def work(target: Target) -> list[dict[str, Any]]:
        return await target.history(agent, entry)

    present(on_target(url, key, data_dir, account, work), as_json, title=f"Takes of entry {entry}")


def restore_command(
    agent: AgentArg,
    entry: EntryArg,
    take: Annotated[str, typer.Argument(help="The take id (from `audiocache cache history`).")],
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Make an earlier take the entry's audio again (the current audio becomes a take)."""

    async def work(target: Target) -> dict[str, Any]:
        return await target.restore(agent, entry, take)

    print(json.dumps(on_target(url, key, data_dir, account, work)))


def register(cache_app: typer.Typer) -> None:
    cache_app.command("history")(history_command)
    cache_app.command("restore")(restore_command)

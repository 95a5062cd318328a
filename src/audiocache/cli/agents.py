"""``audiocache agents …``: on the data folder, or on a server with --url/--key."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from audiocache.cli.common import AccountOption, AsJson, DataDir, Key, Url, console, on_target

if TYPE_CHECKING:
    from audiocache.cli.targets import Target

from audiocache.client import Agent, CachePolicy

agents_app = typer.Typer(
    help="Agents: list, create, duplicate, delete, show and set the cache policy.",
    no_args_is_help=True,
)


def _row(agent: Agent, policy: CachePolicy) -> dict[str, Any]:
    return {"agentId": agent.agent_id, "name": agent.name, "admission": policy.admission}


@agents_app.command("list")
def agents_list(
    account: Annotated[
        str | None, typer.Argument(help="The account (with --url: default the key's).")
    ] = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List an account's agents."""
    from audiocache.cli.common import present

    async def work(target: Target) -> list[tuple[Agent, CachePolicy]]:
        return await target.list_agents(await target.account(account))

    rows = [_row(*pair) for pair in on_target(url, key, data_dir, None, work)]
    present(rows, as_json, title=f"Agents of {account or 'the key'}")


@agents_app.command("create")
def agents_create(
    name: Annotated[str, typer.Option(help="Agent name.")],
    account: Annotated[
        str | None, typer.Option(help="Owning account (with --url: default the key's).")
    ] = None,
    agent_id: Annotated[
        str | None, typer.Option("--agent-id", help="Id (default: generated).")
    ] = None,
    voice: Annotated[str | None, typer.Option(help="Default voice, e.g. en-us.")] = None,
    language: Annotated[str, typer.Option(help="Language code.")] = "en-GB",
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Create an agent; prints its id."""

    async def work(target: Target) -> Agent:
        owner = await target.account(account)
        return await target.create_agent(owner, name, agent_id, voice, language)

    print(on_target(url, key, data_dir, None, work, create=True).agent_id)


@agents_app.command("delete")
def agents_delete(
    agent_id: str,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Delete an agent and its cache entries."""

    async def work(target: Target) -> None:
        await target.delete_agent(agent_id)

    on_target(url, key, data_dir, account, work)
    console.print(f"deleted {agent_id}")


@agents_app.command("duplicate")
def agents_duplicate(
    agent_id: str,
    name: Annotated[str, typer.Option(help="The copy's name.")],
    new_agent_id: Annotated[str | None, typer.Option(help="The copy's id.")] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Copy an agent with its cache entries; prints the copy's id."""

    async def work(target: Target) -> Agent:
        return await target.duplicate_agent(agent_id, name, new_agent_id)

    print(on_target(url, key, data_dir, account, work).agent_id)


@agents_app.command("show")
def agents_show(
    agent_id: str,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Print the agent's cache policy and usage as JSON."""
    import json

    async def work(target: Target) -> CachePolicy:
        return await target.get_policy(agent_id)

    policy = on_target(url, key, data_dir, account, work)
    usage = {"entries": policy.usage_entries, "bytes": policy.usage_bytes}
    print(json.dumps({**policy.to_wire(), "evictedTotal": policy.evicted_total, "usage": usage}))


_LIMIT_HELP = "Keep the current value if not given; 'none' removes the limit."
_KEEP: Any = object()


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
    url: Url = None,
    key: Key = None,
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

    async def work(target: Target) -> CachePolicy:
        current = await target.get_policy(agent_id)
        wanted = replace(
            current, admission=admission, min_hits=min_hits, window_seconds=window_seconds
        )
        return await target.set_policy(agent_id, replace(wanted, **changes))

    p = on_target(url, key, data_dir, account, work)
    limits = {
        "max_entries": p.max_entries,
        "max_bytes": p.max_bytes,
        "eviction": p.eviction,
        "ttl_seconds": p.ttl_seconds,
        "ttl_from": p.ttl_from,
    }
    shown = ", ".join(f"{k} {'none' if v is None else v}" for k, v in limits.items())
    console.print(f"{agent_id}: admission {p.admission}; {shown}")


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

"""``audiocache voices …``: an account's voice library, on the data folder or a server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from audiocache.cli.common import AsJson, DataDir, Key, Url, on_target, present

if TYPE_CHECKING:
    from audiocache.cli.targets import Target

from audiocache.client import Voice

voices_app = typer.Typer(help="Voice library: ls, add, show.", no_args_is_help=True)
Account = Annotated[
    str | None, typer.Option(help="The account whose library it is (with --url: the key's).")
]


def _row(v: Voice) -> dict[str, Any]:
    return {
        "id": v.id,
        "name": v.name,
        "provider": v.provider,
        "providerVoiceId": v.provider_voice_id,
        "config": v.config,
        "metadata": v.metadata,
    }


@voices_app.command("ls")
def voices_ls(
    account: Account = None,
    provider: Annotated[str | None, typer.Option(help="Only this provider's.")] = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List the account's voices."""

    async def work(target: Target) -> list[Voice]:
        return await target.list_voices(await target.account(account), provider)

    present([_row(v) for v in on_target(url, key, data_dir, None, work)], as_json, title="Voices")


@voices_app.command("add")
def voices_add(
    name: Annotated[str, typer.Option(help="Display name.")],
    provider: Annotated[str, typer.Option(help="Engine, e.g. espeak.")],
    provider_voice_id: Annotated[str, typer.Option(help="The engine's voice, e.g. en-gb.")],
    account: Account = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Register a voice; prints its id."""

    async def work(target: Target) -> Voice:
        return await target.create_voice(
            await target.account(account), name, provider, provider_voice_id
        )

    print(on_target(url, key, data_dir, None, work, create=True).id)


@voices_app.command("show")
def voices_show(
    voice_id: str,
    account: Account = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Print one voice as JSON."""
    import json

    async def work(target: Target) -> Voice:
        return await target.get_voice(await target.account(account), voice_id)

    print(json.dumps(_row(on_target(url, key, data_dir, None, work))))

"""``audiocache cache …``, ``stats``, ``warm`` and ``regenerate``: the cache's entries, on
the data folder or on a server (--url/--key). Long work shows a progress bar on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from audiocache.cli.common import (
    AccountOption,
    AsJson,
    DataDir,
    Key,
    Url,
    console,
    guarded,
    on_target,
    present,
)

if TYPE_CHECKING:
    from audiocache.cli.targets import Target

from audiocache.client import Entry, Stats

cache_app = typer.Typer(
    help="Cache entries: ls, get, rm, replace, preview, regenerate, pin, history, restore "
    "(export and import are `audiocache export|import`).",
    no_args_is_help=True,
)
Agent = Annotated[str, typer.Argument(help="The agent whose cache it is.")]
Ids = Annotated[list[str], typer.Argument(help="Entry ids.")]
MAX_PAGE = 200


def _columns() -> tuple[Any, ...]:
    return ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())


def _row(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "transcript": e.transcript,
        "hits": e.hit_count,
        "seconds": round(e.duration, 2),
        "voice": f"{e.provider}:{e.provider_voice_id}",
        "pinned": e.pinned,
        "cachedAt": e.cached_at.isoformat(timespec="seconds"),
    }


@cache_app.command("ls")
def cache_ls(
    agent: Agent,
    limit: Annotated[int, typer.Option(min=1, max=MAX_PAGE, help="Entries to show.")] = 50,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many.")] = 0,
    sort: Annotated[str | None, typer.Option(help="e.g. hit_count:desc")] = None,
    filter: Annotated[
        list[str] | None, typer.Option(help="field:op:value, e.g. transcript:contains:hi")
    ] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Every entry, page by page.")] = False,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """List an agent's cache entries (JSON: the API's entry objects)."""
    filters = filter or []

    async def work(target: Target) -> tuple[list[Entry], int]:
        page = await target.list_entries(agent, limit, offset, sort, filters)
        found, total = list(page.entries), page.total_count
        while all_pages and page.entries and offset + len(found) < total:
            page = await target.list_entries(agent, MAX_PAGE, offset + len(found), sort, filters)
            found.extend(page.entries)
        return found, total

    found, total = on_target(url, key, data_dir, account, work)
    if as_json:
        print(json.dumps([e.raw for e in found]))
        return
    present([_row(e) for e in found], False, title=f"{agent}: {len(found)} of {total} entries")


@cache_app.command("get")
def cache_get(
    agent: Agent,
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default: <id>.wav).")
    ] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="e.g. wav, pcm_16000, ulaw_8000.")
    ] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Download an entry's audio into a file (streamed; whole or not at all)."""
    path = output or Path(f"{entry_id}.wav")

    async def work(target: Target) -> int:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"downloading {entry_id}", total=None)
            return await target.download_to(
                agent, entry_id, path, output_format, lambda n: progress.advance(task, n)
            )

    written = on_target(url, key, data_dir, account, work)
    console.print(f"{path}: {written} bytes")


@cache_app.command("rm")
def cache_rm(
    agent: Agent,
    entry_ids: Ids,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Delete entries; exits 1 if any was not found."""

    async def work(target: Target) -> tuple[list[str], list[str]]:
        deleted: list[str] = []
        failed: list[str] = []
        for start in range(0, len(entry_ids), 20):  # the API's bulk-delete takes 20 at once
            result = await target.delete(agent, entry_ids[start : start + 20])
            deleted += result.deleted
            failed += result.failed
        return deleted, failed

    deleted, failed = on_target(url, key, data_dir, account, work)
    console.print(
        f"deleted {len(deleted)}" + (f"; not found: {' '.join(failed)}" if failed else "")
    )
    print(json.dumps({"deleted": deleted, "failed": failed}))
    if failed:
        raise typer.Exit(1)


def _config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--config") from None
    if not isinstance(value, dict):
        raise typer.BadParameter('a JSON object, e.g. {"speed": 1.1}', param_hint="--config")
    return value


@cache_app.command("replace")
def cache_replace(
    agent: Agent,
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    wav: Annotated[Path, typer.Argument(help="The new WAV file.")],
    text: Annotated[
        str | None, typer.Option(help="New transcript (with --config: replace the details).")
    ] = None,
    config: Annotated[str | None, typer.Option(help="Voice tuning JSON, with --text.")] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Replace an entry's audio (and, with --text, its transcript and voice settings)."""
    tuning = _config(config)
    if tuning is not None and text is None:
        raise typer.BadParameter("--config goes with --text", param_hint="--config")
    audio = guarded(wav.read_bytes)

    async def work(target: Target) -> None:
        await target.replace(agent, entry_id, audio, wav.name, text, tuning)

    on_target(url, key, data_dir, account, work)
    console.print(f"{entry_id}: replaced")


@cache_app.command("preview")
def cache_preview(
    agent: Agent,
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    text: Annotated[str, typer.Argument(help="Text to synthesize in the entry's voice.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="WAV file to write.")] = Path(
        "preview.wav"
    ),
    config: Annotated[str | None, typer.Option(help="Voice tuning JSON.")] = None,
    language: Annotated[str | None, typer.Option(help="Language code.")] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Synthesize a preview with the entry's voice (nothing is stored)."""
    tuning = _config(config) or {}

    async def work(target: Target) -> bytes:
        return await target.preview(agent, entry_id, text, tuning, language)

    audio = on_target(url, key, data_dir, account, work, engines=True)
    guarded(lambda: output.write_bytes(audio))
    console.print(f"{output}: {len(audio)} bytes")


def regenerate_entries(
    agent: str,
    entry_ids: list[str],
    account: str | None,
    data_dir: Path | None,
    url: str | None,
    key: str | None,
) -> None:
    from audiocache import client
    from audiocache import errors as domain

    async def work(target: Target) -> int:
        failed = 0
        with Progress(*_columns(), console=console) as progress:
            task = progress.add_task("regenerating", total=len(entry_ids))
            for entry_id in entry_ids:
                try:
                    await target.regenerate(agent, entry_id)
                    progress.console.print(f"{entry_id}: regenerated")
                except (client.AudioCacheError, domain.AudioCacheError) as exc:
                    failed += 1
                    progress.console.print(f"{entry_id}: {exc.message}")
                progress.advance(task)
        return failed

    if on_target(url, key, data_dir, account, work, engines=True):
        raise typer.Exit(1)


@cache_app.command("regenerate")
def cache_regenerate(
    agent: Agent,
    entry_ids: Ids,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Synthesize entries again in place with their voice and settings."""
    regenerate_entries(agent, entry_ids, account, data_dir, url, key)


def regenerate(
    entry_ids: Annotated[list[str], typer.Argument(help="Entry ids to synthesize again.")],
    agent: Annotated[str, typer.Option(help="The entries' agent.")],
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Synthesize entries again in place (the same as `cache regenerate`)."""
    regenerate_entries(agent, entry_ids, account, data_dir, url, key)


@cache_app.command("pin")
def cache_pin(
    agent: Agent,
    entry_ids: Ids,
    unpin: Annotated[bool, typer.Option("--unpin", help="Unpin instead.")] = False,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Pin entries (never evicted), or unpin them with --unpin."""

    async def work(target: Target) -> list[Entry]:
        return [await target.pin(agent, entry_id, not unpin) for entry_id in entry_ids]

    done = on_target(url, key, data_dir, account, work)
    console.print(f"{'unpinned' if unpin else 'pinned'} {' '.join(e.id for e in done)}")


def stats(
    agent: Annotated[str, typer.Argument(help="The agent.")],
    top: Annotated[int, typer.Option(min=1, max=100, help="Top phrases to list.")] = 10,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
    as_json: AsJson = False,
) -> None:
    """An agent's cache size, hit ratios, top phrases and savings."""

    async def work(target: Target) -> Stats:
        return await target.stats(agent, top)

    result = on_target(url, key, data_dir, account, work)
    if as_json:
        print(json.dumps(result.raw))
        return
    windows = result.raw.get("windows", {})
    rows = [
        {"figure": "entries", "value": result.entries},
        {"figure": "bytes", "value": result.bytes},
        {"figure": "pinned", "value": result.pinned},
        {"figure": "evicted", "value": result.evicted_total},
        {"figure": "characters saved", "value": result.characters_saved},
        *(
            {"figure": f"hit ratio ({name})", "value": w.get("hitRatio")}
            for name, w in windows.items()
        ),
    ]
    present(rows, False, title=f"Stats of {agent}")
    top_rows = [
        {"id": p["id"], "hits": p["hitCount"], "transcript": p["transcript"]}
        for p in result.raw.get("topPhrases", [])
    ]
    if top_rows:
        present(top_rows, False, title="Top phrases")


def warm(
    file: Annotated[typer.FileText, typer.Argument(help="Phrases: one a line, or JSON lines.")],
    agent: Annotated[str, typer.Option(help="Agent to warm.")],
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Syntheses at once.")] = 4,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Synthesize and pin phrases ahead of time; run it again to finish what is left."""
    from audiocache.cache.warmup import WarmReport, parse_phrases

    phrases, problems = parse_phrases(file)
    for line, reason in problems:
        console.print(f"line {line}: {reason}")

    async def work(target: Target) -> WarmReport:
        with Progress(*_columns(), console=console) as progress:
            task = progress.add_task("warming", total=len(phrases))
            return await target.warm(
                agent, phrases, concurrency, lambda _phrase, _created: progress.advance(task)
            )

    report = on_target(url, key, data_dir, account, work, engines=True)
    for line, reason in report.failed:
        console.print(f"line {line}: {reason}")
    failed = len(report.failed) + len(problems)
    console.print(
        f"{report.synthesized} synthesized, {report.already_cached} already cached, {failed} failed"
    )
    print(
        json.dumps(
            {
                "synthesized": report.synthesized,
                "alreadyCached": report.already_cached,
                "failed": failed,
            }
        )
    )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    from audiocache.cli import history

    history.register(cache_app)
    app.add_typer(cache_app, name="cache")
    app.command()(stats)
    app.command()(warm)
    app.command()(regenerate)

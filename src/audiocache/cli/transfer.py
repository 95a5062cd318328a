"""``audiocache export``, ``import`` and ``takes upload``: on the data folder, or with
``--url``/``--key`` (``AUDIOCACHE_URL``/``AUDIOCACHE_KEY``) on a running server through
its routes through ``audiocache.client.Client`` (archives streamed both ways, never whole in
memory). Progress bars on stderr, a JSON summary on stdout, an error in one line and exit 1."""

from __future__ import annotations

import functools
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from audiocache.cache.transfer.archive import Manifest
from audiocache.cache.transfer.export import export_agent
from audiocache.cache.transfer.importer import AgentFactory, ImportReport, Limits, import_archive
from audiocache.cache.transfer.sources import FolderSource, Source, open_archive
from audiocache.cache.transfer.takes import TakeLimits, TakeResult, read_mapping, upload_takes
from audiocache.cli.common import (
    AccountOption,
    DataDir,
    Key,
    Url,
    console,
    existing,
    guarded,
    retry_note,
    settings_for,
    with_services,
)
from audiocache.client import Client
from audiocache.client import ImportReport as RemoteImportReport
from audiocache.errors import NotFound
from audiocache.models import Agent
from audiocache.services import Services

T = TypeVar("T")
takes_app = typer.Typer(help="Takes: upload studio recordings by transcript.", no_args_is_help=True)
AgentOption = Annotated[str, typer.Option("--agent", help="The agent (its agentId).")]


def register(app: typer.Typer) -> None:
    app.command("export")(export_command)
    app.command("import")(import_command)
    app.add_typer(takes_app, name="takes")


def _local(
    data_dir: Path | None, work: Callable[[Services], Awaitable[T]], *, create: bool = False
) -> T:
    """``work`` on the data folder; one that must exist already unless ``create``."""
    settings = settings_for(data_dir)
    if not create:
        guarded(lambda: existing(settings))
    return with_services(settings, work)


def _remote(url: str, key: str | None, work: Callable[[Client], T]) -> T:
    """``work`` with a client of the server at ``url``, its errors told in one line."""

    def run() -> T:
        with Client(url, key, on_retry=retry_note) as client:
            return work(client)

    return guarded(run)


async def _agent(services: Services, agent_id: str, account: str | None) -> Agent:
    return await services.agents.named(agent_id, account)


def _bytes_progress() -> Progress:
    return Progress(
        "{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    )


def _count_progress() -> Progress:
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=console)


@contextmanager
def _written(file: Path) -> Iterator[Any]:
    """``file`` written whole or not at all: a ``.part`` beside it, fsynced, renamed."""
    part = file.with_name(file.name + ".part")
    try:
        with part.open("wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        part.replace(file)
    finally:
        part.unlink(missing_ok=True)


def export_command(
    file: Annotated[Path, typer.Argument(help="The archive to write (a tar).")],
    agent: AgentOption,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Write an agent's entries and audio to a portable archive (WAVs + manifest.json)."""
    with _bytes_progress() as progress:
        task = progress.add_task("exporting", total=None)

        def advance(n: int) -> None:
            progress.advance(task, n)

        if url:
            size = _remote(url, key, lambda client: client.export_to(agent, file, advance))
        else:

            async def work(services: Services) -> int:
                found = await _agent(services, agent, account)
                size = 0
                with _written(file) as out:
                    async for chunk in export_agent(services.entries, services.blobs, found):
                        out.write(chunk)
                        size += len(chunk)
                        advance(len(chunk))
                return size

            size = _local(data_dir, work)
    manifest = json.loads(_manifest_bytes(file))
    console.print(f"exported {len(manifest['entries'])} entries of {agent} to {file}")
    print(json.dumps({"file": str(file), "entries": len(manifest["entries"]), "bytes": size}))


def _manifest_bytes(file: Path) -> bytes:
    with tarfile.open(file, "r:") as tar:
        handle = tar.extractfile("manifest.json")
        return handle.read() if handle is not None else b"{}"


def import_command(
    file: Annotated[Path, typer.Argument(help="An archive made by `audiocache export`.")],
    agent: AgentOption,
    account: Annotated[
        str | None,
        typer.Option(help="The agent's account; the agent is created in it if it is missing."),
    ] = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Restore an archive into an agent; run it again to finish an interrupted import (what
    is there already is left unchanged). A damaged archive is refused whole."""
    if url:
        with _bytes_progress() as progress:

            def upload(client: Client) -> dict[str, Any]:
                task = progress.add_task("uploading", total=file.stat().st_size)
                report = client.import_archive(agent, file, lambda n: progress.advance(task, n))
                return _summary(report)

            data = _remote(url, key, upload)
    else:
        data = _local(
            data_dir, lambda services: _import_locally(services, file, agent, account), create=True
        )
    console.print(
        f"{data['created']} created, {data['replaced']} replaced, {data['unchanged']} unchanged, "
        f"{data['failed']} failed (of {data['total']})"
        + (" — nothing changed" if not data["created"] and not data["replaced"] else "")
    )
    for failure in data["failures"]:
        console.print(
            f"entry {failure['index']} ({failure['transcript'][:60]!r}): {failure['reason']}"
        )
    print(json.dumps({k: v for k, v in data.items() if k != "failures"}))
    if data["failed"]:
        raise typer.Exit(1)


def _summary(report: RemoteImportReport) -> dict[str, Any]:
    """The server's report in the shape (and key order) of a local import's."""
    return {
        "total": report.total,
        "created": report.created,
        "replaced": report.replaced,
        "unchanged": report.unchanged,
        "failed": report.failed,
        "failures": report.failures,
        "missingAudio": report.missing_audio,
    }


async def _import_locally(
    services: Services, file: Path, agent_id: str, account: str | None
) -> dict[str, Any]:
    settings = services.settings
    limits = Limits(settings.transfer_max_file_bytes, settings.transfer_max_manifest_bytes)
    target: Agent | AgentFactory
    try:
        target = await _agent(services, agent_id, account)
    except NotFound:
        if account is None:
            raise NotFound(
                f"Agent {agent_id!r} not found; give --account to create it from the archive"
            ) from None
        target = functools.partial(_create_agent, services, agent_id, account)
    with file.open("rb") as archive, _count_progress() as progress:
        tasks: dict[str, TaskID] = {}

        def advance(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)

        report: ImportReport = await import_archive(
            services.cache, target, archive, limits, advance
        )
    return report.as_dict()


async def _create_agent(
    services: Services, agent_id: str, account: str, manifest: Manifest
) -> Agent:
    """The agent an archive is imported into, made like the one it was exported from."""
    source = manifest.agent
    agent = await services.agents.create(
        account,
        agent_id=agent_id,
        name=source.name or agent_id,
        greeting=source.name or agent_id,
        language_code=source.languageCode or "en-GB",
        voice_id=source.voiceId,
    )
    console.print(f"created agent {agent_id} in account {account}")
    return agent


@takes_app.command("upload")
def takes_upload(
    path: Annotated[Path, typer.Argument(help="A folder, or a tar or zip, of WAV files.")],
    agent: AgentOption,
    map_file: Annotated[
        Path | None,
        typer.Option(
            "--map",
            help="CSV (file,transcript) or JSON mapping; default: the one CSV/JSON file in PATH.",
        ),
    ] = None,
    voice: Annotated[
        str | None, typer.Option(help="Voice of the takes (default: the agent's).")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Language of the takes (default: the agent's).")
    ] = None,
    account: AccountOption = None,
    data_dir: DataDir = None,
    url: Url = None,
    key: Key = None,
) -> None:
    """Put studio takes on their transcripts' entries (created pinned if none matches)."""
    if url:
        with _bytes_progress() as progress:
            results = _remote(
                url,
                key,
                lambda client: _upload_remotely(
                    client, path, map_file, agent, voice, language, progress
                ),
            )
    else:

        async def work(services: Services) -> list[dict[str, Any]]:
            found = await _agent(services, agent, account)
            settings = services.settings
            limits = TakeLimits(
                settings.transfer_max_file_bytes, settings.transfer_max_manifest_bytes
            )
            with _source(path) as source:
                raw = map_file.read_bytes() if map_file is not None else None
                name = map_file.name if map_file is not None else None
                rows = await read_mapping(source, limits, name, raw)
                with _count_progress() as progress:
                    task = progress.add_task("uploading takes", total=len(rows))
                    done: list[TakeResult] = await upload_takes(
                        services.cache,
                        services.curation,
                        found,
                        source,
                        rows,
                        limits,
                        voice=voice,
                        language=language,
                        progress=lambda n, _total: progress.update(task, completed=n),
                    )
            return [r.as_dict() for r in done]

        results = _local(data_dir, work)
    for r in results:
        ids = ", ".join(r["entryIds"])
        detail = r["reason"] or (f"entry {ids}" if ids else "")
        console.print(f"{r['action']:>8}  {r['file']}  {detail}", highlight=False)
    counts = {
        a: sum(r["action"] == a for r in results)
        for a in ("created", "replaced", "failed", "skipped")
    }
    print(json.dumps(counts))
    if counts["failed"]:
        raise typer.Exit(1)


@contextmanager
def _source(path: Path) -> Iterator[Source]:
    if path.is_dir():
        yield FolderSource(path)
        return
    with path.open("rb") as handle:
        source = open_archive(handle)
        try:
            yield source
        finally:
            source.close()


def _upload_remotely(
    client: Client,
    path: Path,
    map_file: Path | None,
    agent: str,
    voice: str | None,
    language: str | None,
    progress: Progress,
) -> list[dict[str, Any]]:
    """An archive without a separate mapping goes as it is; a folder (or an archive with
    ``--map``) is packed into a temporary tar with the mapping beside the takes. The bar
    counts the bytes sent, as an import's does."""

    def send(archive: Path, mapping: str | None = None) -> list[dict[str, Any]]:
        task = progress.add_task("uploading takes", total=archive.stat().st_size)
        report = client.upload_takes(
            agent,
            archive,
            voice=voice,
            language=language,
            mapping=mapping,
            on_chunk=lambda n: progress.advance(task, n),
        )
        return report.results

    if not path.is_dir() and map_file is None:
        return send(path)
    mapping = f"_mapping/{map_file.name}" if map_file is not None else None
    with tempfile.TemporaryDirectory(prefix="audiocache-takes-") as folder:
        packed = Path(folder) / "takes.tar"
        with _source(path) as source, tarfile.open(packed, "w") as tar:
            for name in source.names():
                if isinstance(source, FolderSource):
                    tar.add(source.root / name, arcname=name)  # streamed from disk
                else:
                    _add(tar, name, source.read(name, _PACKED_FILE_BYTES))
            if map_file is not None and mapping is not None:
                _add(tar, mapping, map_file.read_bytes())
        return send(packed, mapping)


_PACKED_FILE_BYTES = 1024**3  # a member repacked for the server (which has its own limit)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))

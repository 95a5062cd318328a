"""An export archive restored into an agent: verified whole first, then stored entry by entry.

1. The archive is read as a tar (``archive.py``); its manifest is parsed and checked.
2. Every audio file the manifest names is read and checked against it: present once, of
   the stated size, the stated sha256, a WAV the cache serves. One problem anywhere and
   the import stops with ``InvalidArchive`` before anything is stored.
3. Entries are stored one at a time through the one blob writer (blob, then row): an
   entry is in or not, never half. The key is computed for the target agent; an entry
   already there with the same audio is ``unchanged``, one with other audio gets the
   archive's (its take goes into the history: ``replaced``), a new one is ``created``
   with the archive's flags, hit count and dates.

So a second import of the same archive changes nothing, and an interrupted one, run again,
skips what it stored and finishes the rest. Files are read in archive order (a gzipped tar
is read front to back, not seeked back and forth); one file is in memory at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tarfile
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

from audiocache.audio.wav import WavInfo, parse_wav
from audiocache.cache.keys import KeyParts
from audiocache.cache.service import CacheService
from audiocache.cache.text import validate_text
from audiocache.cache.transfer.archive import MANIFEST, Manifest, ManifestEntry, naive_utc
from audiocache.cache.transfer.archive import parse_manifest as _parse_manifest
from audiocache.cache.tuning import repair_tuning
from audiocache.errors import Conflict, InvalidArchive, InvalidAudio, InvalidInput
from audiocache.models import Agent
from audiocache.storage.takes_repo import TakeChange

log = logging.getLogger("audiocache.transfer")
MAX_PROBLEMS_SHOWN = 5
Progress = Callable[[str, int, int], None]  # phase ("verifying" | "importing"), done, total
# The agent to import into, made once the archive is verified (the CLI creates a missing one
# from the manifest's agent, and not at all if the archive is refused).
AgentFactory = Callable[[Manifest], Awaitable[Agent]]


@dataclass(frozen=True)
class Failure:
    index: int  # the entry's place in the manifest
    transcript: str
    reason: str


@dataclass
class ImportReport:
    total: int = 0
    created: int = 0
    replaced: int = 0
    unchanged: int = 0
    failures: list[Failure] = field(default_factory=list)
    missing_audio: int = 0  # entries the export left out (their audio was lost there)

    def count(self, outcome: str) -> None:
        if outcome == "created":
            self.created += 1
        elif outcome == "replaced":
            self.replaced += 1
        else:
            self.unchanged += 1

    @property
    def changed(self) -> bool:
        return bool(self.created or self.replaced)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "created": self.created,
            "replaced": self.replaced,
            "unchanged": self.unchanged,
            "failed": len(self.failures),
            "failures": [
                {"index": f.index, "transcript": f.transcript, "reason": f.reason}
                for f in self.failures
            ],
            "missingAudio": self.missing_audio,
        }


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_manifest_bytes: int


class _Tar:
    """``tarfile`` behind ``asyncio.to_thread``: its reads block."""

    def __init__(self, tar: tarfile.TarFile, members: list[tarfile.TarInfo]) -> None:
        self.tar = tar
        self.members = members

    @classmethod
    async def open(cls, archive: IO[bytes]) -> _Tar:
        def scan() -> _Tar:
            try:
                tar = tarfile.open(fileobj=archive, mode="r:*")  # noqa: SIM115 - close()
            except tarfile.ReadError as exc:
                raise InvalidArchive(
                    "Not a tar archive (plain, gzip, bz2 or xz), or one damaged at its start"
                ) from exc
            return cls(tar, tar.getmembers())

        with _unreadable():
            return await asyncio.to_thread(scan)

    async def read(self, member: tarfile.TarInfo, limit: int) -> bytes:
        def read() -> bytes:
            handle = self.tar.extractfile(member)
            if handle is None:
                raise InvalidArchive(f"{member.name} is not a regular file")
            return handle.read(limit + 1)

        with _unreadable():
            return await asyncio.to_thread(read)

    def close(self) -> None:
        self.tar.close()


class _unreadable:
    """Anything ``tarfile`` or gzip raise on a damaged archive → ``InvalidArchive``."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, _t: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        if isinstance(exc, tarfile.TarError | EOFError | zlib.error | OSError):
            raise InvalidArchive(f"Not a readable archive: {exc}") from exc


async def import_archive(
    cache: CacheService,
    agent: Agent | AgentFactory,
    archive: IO[bytes],
    limits: Limits,
    progress: Progress | None = None,
) -> ImportReport:
    """Verify the whole archive (``InvalidArchive`` and nothing stored if anything is
    wrong), then store its entries into ``agent``."""
    tar = await _Tar.open(archive)
    try:
        manifest = await _manifest(tar, limits)
        files = _files(tar, manifest)
        await _verify(tar, manifest, files, limits, progress)
        target = agent if isinstance(agent, Agent) else await agent(manifest)
        return await _store(cache, target, tar, manifest, files, limits, progress)
    finally:
        tar.close()


async def _manifest(tar: _Tar, limits: Limits) -> Manifest:
    found = [m for m in tar.members if m.name == MANIFEST]
    if not found:
        raise InvalidArchive(f"The archive has no {MANIFEST} (truncated, or not an export)")
    if len(found) > 1 or not found[0].isfile():
        raise InvalidArchive(f"The archive's {MANIFEST} is not one regular file")
    if found[0].size > limits.max_manifest_bytes:
        raise InvalidArchive(
            f"The archive's {MANIFEST} is {found[0].size} bytes; the limit is "
            f"{limits.max_manifest_bytes} (AUDIOCACHE_TRANSFER_MAX_MANIFEST_BYTES)"
        )
    raw = await tar.read(found[0], limits.max_manifest_bytes)
    return _parse_manifest(raw)


def _files(tar: _Tar, manifest: Manifest) -> list[tuple[tarfile.TarInfo, list[int]]]:
    """The archive members the manifest needs, in archive order, each with the indexes of
    the entries that use it; a missing or doubled member is ``InvalidArchive``."""
    wanted: dict[str, list[int]] = {}
    for index, entry in enumerate(manifest.entries):
        wanted.setdefault(entry.file, []).append(index)
    members: dict[str, tarfile.TarInfo] = {}
    problems: list[str] = []
    for member in tar.members:
        if member.name in wanted:
            if member.name in members:
                problems.append(f"{member.name} appears twice")
            elif not member.isfile():
                problems.append(f"{member.name} is not a regular file")
            members[member.name] = member
    problems += [f"{name} is missing" for name in wanted if name not in members]
    _refuse(problems)
    ordered = sorted(members.values(), key=lambda m: m.offset)
    return [(member, wanted[member.name]) for member in ordered]


async def _verify(
    tar: _Tar,
    manifest: Manifest,
    files: list[tuple[tarfile.TarInfo, list[int]]],
    limits: Limits,
    progress: Progress | None,
) -> None:
    problems: list[str] = []
    for done, (member, indexes) in enumerate(files, 1):
        expected = manifest.entries[indexes[0]]
        try:
            _check(await tar.read(member, limits.max_file_bytes), expected, limits)
        except InvalidInput as exc:
            problems.append(f"{member.name}: {exc.message}")
        if progress is not None:
            progress("verifying", done, len(files))
    _refuse(problems)


def _check(data: bytes, expected: ManifestEntry, limits: Limits) -> WavInfo:
    if len(data) > limits.max_file_bytes:
        raise InvalidArchive(
            f"larger than {limits.max_file_bytes} bytes (AUDIOCACHE_TRANSFER_MAX_FILE_BYTES)"
        )
    if len(data) != expected.sizeBytes:
        raise InvalidArchive(f"{len(data)} bytes, the manifest says {expected.sizeBytes}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected.sha256:
        raise InvalidArchive(f"sha256 {digest} does not match the manifest's {expected.sha256}")
    try:
        return parse_wav(data)
    except InvalidAudio as exc:
        raise InvalidArchive(f"not a WAV the cache serves: {exc.message}") from exc


def _refuse(problems: list[str]) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > 5 else ""
    raise InvalidArchive(
        f"The archive is damaged; nothing was imported. {len(problems)} "
        f"problem{'s' if len(problems) > 1 else ''}: {shown}{more}"
    )


async def _store(
    cache: CacheService,
    agent: Agent,
    tar: _Tar,
    manifest: Manifest,
    files: list[tuple[tarfile.TarInfo, list[int]]],
    limits: Limits,
    progress: Progress | None,
) -> ImportReport:
    report = ImportReport(total=len(manifest.entries))
    report.missing_audio = len(manifest.missingAudio)
    done = 0
    for member, indexes in files:
        data = await tar.read(member, limits.max_file_bytes)
        info: WavInfo | None = None
        for index in indexes:
            entry = manifest.entries[index]
            try:
                info = info or _check(data, entry, limits)  # the file may have changed since
                outcome = await _store_entry(cache, agent, entry, data, info)
                report.count(outcome)
            except (InvalidInput, Conflict) as exc:  # this entry's own; storage errors stop
                report.failures.append(Failure(index, entry.transcript[:200], exc.message))
            done += 1
            if progress is not None:
                progress("importing", done, report.total)
    log.info(
        "import into agent %s: %d created, %d replaced, %d unchanged, %d failed",
        agent.id,
        report.created,
        report.replaced,
        report.unchanged,
        len(report.failures),
    )
    return report


async def _store_entry(
    cache: CacheService, agent: Agent, entry: ManifestEntry, data: bytes, info: WavInfo
) -> str:
    """Store one entry; returns the report field it counts in."""
    text = validate_text(entry.transcript, cache.max_text_chars, name="transcript")
    # A config the tuning model now rejects is used without the offending fields, as the
    # source instance did; the key is the one the runtime path computes for it.
    config = repair_tuning(entry.config, owner=f"imported entry {entry.id}")
    key = KeyParts(
        agent_id=agent.id,
        provider=entry.provider,
        voice=entry.voice,
        model=entry.model,
        language=entry.language,
        text=text,
        config=config,
    ).key
    flags = {
        "imported": entry.flags.imported,
        "regenerated": entry.flags.regenerated,
        "pinned": entry.flags.pinned,
        "warmed": entry.flags.warmed,
    }
    existing = await cache.entries.find_by_key(agent.id, key)
    if existing is not None and existing.blob_sha256 == entry.sha256:
        await cache.writer.ensure(entry.sha256, data)  # its audio lost here: put back
        return "unchanged"
    if existing is not None:
        cache.forget_recent()
        changes = {**flags, "audio_filename": entry.audioFilename}
        await cache.writer.update(existing, data, info, changes, history=TakeChange("replace"))
        return "replaced"
    values: dict[str, Any] = {
        "agent_id": agent.id,
        "cache_key": key,
        "transcript": text,
        "provider": entry.provider,
        "provider_voice_id": entry.voice,
        "language_code": entry.language,
        "model": entry.model,
        "config": config,
        "hit_count": entry.hitCount,
        "last_hit_at": naive_utc(entry.lastHitAt),
        "audio_filename": entry.audioFilename,
        **flags,
    }
    if entry.cachedAt is not None:
        values["cached_at"] = naive_utc(entry.cachedAt)
    _created_entry, created = await cache.writer.insert(values, data, info)
    return "created" if created else "unchanged"

"""``AsyncClient``: every audiocache API operation, awaitable (httpx.AsyncClient).

The same surface as ``Client`` (``sync.py``); both run the descriptions in ``calls.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
import httpx

from audiocache.client import calls
from audiocache.client.base import ClientBase, check
from audiocache.client.calls import Audio, Call
from audiocache.client.errors import AudioCacheError
from audiocache.client.models import (
    Agent,
    AuditPage,
    BulkDeleteResult,
    CachePolicy,
    Entry,
    EntryPage,
    ImportReport,
    Phrase,
    PhraseStatus,
    Speech,
    Stats,
    StoreResult,
    Take,
    TakesReport,
    Voice,
    VoiceSample,
    WarmResult,
    Whoami,
)
from audiocache.client.retry import Attempts, transport_error
from audiocache.client.sync import CHUNK_SIZE, PAGE_SIZE
from audiocache.client.upload import OnChunk, Source

T = TypeVar("T")


class AsyncClient(ClientBase):
    """``async with AsyncClient(url, key, account="acme") as client: ...``"""

    def __init__(self, base_url: str, api_key: str | None = None, **options: Any) -> None:
        super().__init__(base_url, api_key, **options)
        self._http = httpx.AsyncClient(**self._options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing ----------------------------------------------------------------------

    async def _run(self, call: Call[T]) -> T:
        attempts = Attempts(self.retry, call.method, self.on_retry)
        while True:
            error: AudioCacheError | None
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    **call.request_kwargs(),
                    **call.async_body(),
                    **self._timeout(call),
                )
                error = check(response, response.content)
            except httpx.TransportError as exc:
                error = transport_error(exc, self.base_url)
            if error is None:
                return call.parse(response)
            if call.absent is not None and isinstance(error, call.absent):
                return cast(T, None)
            wait = attempts.delay(error)
            if wait is None:
                raise error
            await anyio.sleep(wait)

    @contextlib.asynccontextmanager
    async def _open(self, call: Call[Any]) -> AsyncIterator[httpx.Response]:
        """The response of ``call`` with its body not read yet (opening is retried)."""
        attempts = Attempts(self.retry, call.method, self.on_retry)
        while True:
            request = self._http.build_request(
                call.method,
                call.path,
                **call.request_kwargs(),
                **call.async_body(),
                **self._timeout(call),
            )
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                error: AudioCacheError | None = transport_error(exc, self.base_url)
            else:
                if response.is_success:
                    try:
                        yield response
                    finally:
                        await response.aclose()
                    return
                error = check(response, await response.aread())
                await response.aclose()
            assert error is not None
            wait = attempts.delay(error)
            if wait is None:
                raise error
            await anyio.sleep(wait)

    # --- audio cache -------------------------------------------------------------------

    async def list_entries(
        self,
        agent: str,
        *,
        limit: int = 50,
        offset: int = 0,
        sort: str | None = None,
        filters: Iterable[str] = (),
    ) -> EntryPage:
        return await self._run(calls.list_entries(agent, limit, offset, sort, filters))

    async def iter_entries(
        self,
        agent: str,
        *,
        sort: str | None = None,
        filters: Iterable[str] = (),
        page_size: int = PAGE_SIZE,
    ) -> AsyncIterator[Entry]:
        """Every entry, page after page (see ``Client.iter_entries``)."""
        chosen, offset = list(filters), 0
        while True:
            page = await self.list_entries(
                agent, limit=page_size, offset=offset, sort=sort, filters=chosen
            )
            for entry in page.entries:
                yield entry
            offset += len(page.entries)
            if not page.entries or offset >= page.total_count:
                return

    async def download(
        self, agent: str, entry_id: str | int, output_format: str | None = None
    ) -> bytes:
        return await self._run(calls.download(agent, entry_id, output_format))

    async def iter_download(
        self,
        agent: str,
        entry_id: str | int,
        output_format: str | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> AsyncIterator[bytes]:
        """The audio as it arrives, ``chunk_size`` bytes at a time (never all in memory)."""
        async with self._open(calls.download(agent, entry_id, output_format)) as response:
            try:
                async for chunk in response.aiter_bytes(chunk_size):
                    yield chunk
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc

    async def download_to(
        self,
        agent: str,
        entry_id: str | int,
        path: Path,
        output_format: str | None = None,
        on_chunk: OnChunk | None = None,
    ) -> int:
        """Stream the audio into ``path`` (whole or not at all); returns the bytes written."""
        chunks = self.iter_download(agent, entry_id, output_format)
        return await _write_all(chunks, path, on_chunk)

    async def replace_file(
        self, agent: str, entry_id: str | int, wav: Audio, filename: str | None = None
    ) -> None:
        await self._run(calls.replace_file(agent, entry_id, wav, filename))

    async def replace_details(
        self,
        agent: str,
        entry_id: str | int,
        wav: Audio,
        text: str,
        config: dict[str, Any],
        filename: str | None = None,
    ) -> None:
        await self._run(calls.replace_details(agent, entry_id, wav, text, config, filename))

    async def preview(
        self,
        agent: str,
        entry_id: str | int,
        text: str,
        config: dict[str, Any],
        language: str | None = None,
    ) -> bytes:
        return await self._run(calls.preview(agent, entry_id, text, config, language))

    async def delete_entry(self, agent: str, entry_id: str | int) -> None:
        await self._run(calls.delete_entry(agent, entry_id))

    async def bulk_delete(self, agent: str, ids: Sequence[str | int]) -> BulkDeleteResult:
        return await self._run(calls.bulk_delete(agent, ids))

    async def regenerate(self, agent: str, entry_id: str | int) -> Entry:
        return await self._run(calls.regenerate(agent, entry_id))

    async def pin(self, agent: str, entry_id: str | int) -> Entry:
        return await self._run(calls.pin(agent, entry_id, True))

    async def unpin(self, agent: str, entry_id: str | int) -> Entry:
        return await self._run(calls.pin(agent, entry_id, False))

    async def warm(self, agent: str, phrases: Sequence[Phrase], pin: bool = True) -> WarmResult:
        return await self._run(calls.warm(agent, phrases, pin))

    async def stats(self, agent: str, top: int = 10) -> Stats:
        return await self._run(calls.stats(agent, top))

    async def tts(self, agent: str, phrase: Phrase, output_format: str | None = None) -> Speech:
        return await self._run(calls.tts(agent, phrase, output_format))

    async def lookup(
        self, agent: str, phrase: Phrase, output_format: str | None = None
    ) -> Speech | None:
        return await self._run(calls.lookup(agent, phrase, output_format))

    async def lookup_batch(self, agent: str, phrases: Sequence[Phrase]) -> list[PhraseStatus]:
        return await self._run(calls.lookup_batch(agent, phrases))

    async def store(self, agent: str, phrase: Phrase, wav: Audio) -> StoreResult:
        return await self._run(calls.store(agent, phrase, wav))

    async def list_takes(self, agent: str, entry_id: str | int) -> list[Take]:
        """The entry's earlier takes, newest first."""
        return await self._run(calls.list_takes(agent, entry_id))

    async def download_take(
        self,
        agent: str,
        entry_id: str | int,
        take_id: str | int,
        output_format: str | None = None,
    ) -> bytes:
        return await self._run(calls.download_take(agent, entry_id, take_id, output_format))

    async def restore_take(self, agent: str, entry_id: str | int, take_id: str | int) -> Entry:
        """Make an earlier take the entry's audio again (the current one becomes a take)."""
        return await self._run(calls.restore_take(agent, entry_id, take_id))

    async def iter_export(self, agent: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The agent's export archive (tar) as it is produced."""
        async with self._open(calls.export(agent)) as response:
            try:
                async for chunk in response.aiter_bytes(chunk_size):
                    yield chunk
            except httpx.TransportError as exc:
                raise transport_error(exc, self.base_url) from exc

    async def export_to(self, agent: str, path: Path, on_chunk: OnChunk | None = None) -> int:
        """Stream the agent's export archive into ``path`` (whole or not at all)."""
        return await _write_all(self.iter_export(agent), path, on_chunk)

    async def import_archive(
        self, agent: str, archive: Source, on_chunk: OnChunk | None = None
    ) -> ImportReport:
        """Restore an export archive into the agent. A path or an open file is streamed in
        chunks (never whole in memory), ``on_chunk(n)`` told each chunk's size."""
        return await self._run(calls.import_archive(agent, archive, on_chunk))

    async def upload_takes(
        self,
        agent: str,
        archive: Source,
        *,
        voice: str | None = None,
        language: str | None = None,
        mapping: str | None = None,
        on_chunk: OnChunk | None = None,
    ) -> TakesReport:
        """Put a tar or zip of takes on their transcripts' entries (streamed like
        ``import_archive``)."""
        call = calls.upload_takes(agent, archive, voice, language, mapping, on_chunk)
        return await self._run(call)

    async def audit_log(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        operation: str | None = None,
        since: str | None = None,
        until: str | None = None,
        account: str | None = None,
    ) -> AuditPage:
        call = calls.audit_log(self._account(account), limit, offset, operation, since, until)
        return await self._run(call)

    async def whoami(self) -> Whoami:
        """The key's account, key id and scopes."""
        return await self._run(calls.whoami())

    # --- agents ------------------------------------------------------------------------

    async def list_agents(self, account: str | None = None) -> list[Agent]:
        return await self._run(calls.list_agents(self._account(account)))

    async def create_agent(
        self,
        name: str,
        *,
        agent_id: str | None = None,
        greeting: str | None = None,
        language: str = "en-GB",
        voice: str | None = None,
        account: str | None = None,
    ) -> Agent:
        call = calls.create_agent(self._account(account), name, agent_id, greeting, language, voice)
        return await self._run(call)

    async def delete_agent(self, agent: str) -> None:
        await self._run(calls.delete_agent(agent))

    async def duplicate_agent(
        self, agent: str, new_name: str, new_agent_id: str | None = None
    ) -> Agent:
        return await self._run(calls.duplicate_agent(agent, new_name, new_agent_id))

    async def get_cache_policy(self, agent: str) -> CachePolicy:
        return await self._run(calls.get_cache_policy(agent))

    async def set_cache_policy(self, agent: str, policy: CachePolicy) -> CachePolicy:
        return await self._run(calls.set_cache_policy(agent, policy))

    # --- voice library -----------------------------------------------------------------

    async def list_voices(
        self,
        *,
        language: str | None = None,
        gender: str | None = None,
        provider: str | None = None,
        is_poly_voice: bool | None = None,
        account: str | None = None,
    ) -> list[Voice]:
        call = calls.list_voices(self._account(account), language, gender, provider, is_poly_voice)
        return await self._run(call)

    async def create_voice(
        self,
        name: str,
        provider: str,
        provider_voice_id: str,
        *,
        config: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> Voice:
        call = calls.create_voice(
            self._account(account), name, provider, provider_voice_id, config, metadata
        )
        return await self._run(call)

    async def get_voice(self, voice_id: str, *, account: str | None = None) -> Voice:
        return await self._run(calls.get_voice(self._account(account), voice_id))

    async def update_voice(
        self, voice_id: str, changes: dict[str, Any], *, account: str | None = None
    ) -> Voice:
        return await self._run(calls.update_voice(self._account(account), voice_id, changes))

    async def voice_sample(self, voice_id: str, *, account: str | None = None) -> VoiceSample:
        return await self._run(calls.voice_sample(self._account(account), voice_id))

    # --- operations --------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._run(calls.health())

    async def ready(self) -> dict[str, Any]:
        return await self._run(calls.ready())


async def _write_all(chunks: AsyncIterator[bytes], path: Path, on_chunk: OnChunk | None) -> int:
    """``chunks`` into ``path`` through a ``.part`` file, fsynced and renamed at the end."""
    part = path.with_name(path.name + ".part")
    written = 0
    try:
        with part.open("wb") as out:
            async for chunk in chunks:
                out.write(chunk)  # a chunk into the page cache: fine on the loop
                written += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
            out.flush()
            # On disk before the name says it is whole (off the loop: an fsync can wait).
            await anyio.to_thread.run_sync(os.fsync, out.fileno())
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return written

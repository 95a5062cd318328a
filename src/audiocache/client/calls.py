"""Every API operation as a description of one HTTP call and how to read its answer.

The sync and async clients run the same descriptions (``Client._run``/``AsyncClient._run``),
so the paths, bodies and parsing live here once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from audiocache.client.errors import NotCached
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
from audiocache.client.upload import OnChunk, Source, Upload

T = TypeVar("T")
Audio = bytes | Path


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    json: Any = None
    content: bytes | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # An error answer this call turns into a value (a lookup's 404 NOT_CACHED is None).
    absent: type[Exception] | None = None
    # A body sent as it is read (an archive file is streamed, never read whole).
    upload: Upload | None = None
    # Its answer comes once the server has worked through the whole archive (or its body
    # is an archive produced as it goes): the client's transfer timeout, not its timeout.
    slow: bool = False

    def request_kwargs(self) -> dict[str, Any]:
        headers = self.headers if self.upload is None else {**self.headers, **self.upload.headers()}
        kwargs: dict[str, Any] = {"params": self.params or None, "headers": headers}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if self.files is not None:
            kwargs["files"] = self.files
            kwargs["data"] = self.data
        return kwargs

    def sync_body(self) -> dict[str, Any]:
        return {} if self.upload is None else {"content": self.upload.chunks()}

    def async_body(self) -> dict[str, Any]:
        return {} if self.upload is None else {"content": self.upload.achunks()}


def _seg(value: str | int) -> str:
    return quote(str(value), safe="")


def _cache(agent: str, *rest: str | int) -> str:
    tail = "".join(f"/{_seg(part)}" for part in rest)
    return f"/v1/agents/{_seg(agent)}/audio-cache{tail}"


def _json(response: httpx.Response) -> Any:
    return response.json()


def _none(_response: httpx.Response) -> None:
    return None


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def _speech(response: httpx.Response) -> Speech:
    return Speech(
        audio=response.content,
        media_type=response.headers.get("content-type", "audio/wav"),
        hit=response.headers.get("x-audio-cache") == "hit",
        entry_id=response.headers.get("x-audio-cache-entry-id"),
    )


def read_audio(audio: Audio) -> bytes:
    return audio.read_bytes() if isinstance(audio, Path) else audio


def _filename_header(filename: str | None) -> dict[str, str]:
    # Header values travel as latin-1; a UTF-8 name is sent as its bytes (the server re-reads).
    if not filename:
        return {}
    return {"X-Filename": filename.encode("utf-8").decode("latin-1")}


# --- audio cache -------------------------------------------------------------------------


def list_entries(
    agent: str,
    limit: int = 50,
    offset: int = 0,
    sort: str | None = None,
    filters: Iterable[str] = (),
) -> Call[EntryPage]:
    params = [("limit", str(limit)), ("offset", str(offset))]
    if sort:
        params.append(("sort", sort))
    params.extend(("filter", f) for f in filters)
    return Call("GET", _cache(agent), lambda r: EntryPage.from_wire(r.json()), params=params)


def download(agent: str, entry_id: str | int, output_format: str | None = None) -> Call[bytes]:
    params = [("output_format", output_format)] if output_format else []
    return Call("GET", _cache(agent, entry_id, "file"), _bytes, params=params)


def replace_file(
    agent: str, entry_id: str | int, wav: Audio, filename: str | None = None
) -> Call[None]:
    if filename is None and isinstance(wav, Path):
        filename = wav.name
    headers = {"Content-Type": "audio/wav", **_filename_header(filename)}
    return Call(
        "PATCH",
        _cache(agent, entry_id, "file"),
        _none,
        content=read_audio(wav),
        headers=headers,
    )


def replace_details(
    agent: str,
    entry_id: str | int,
    wav: Audio,
    text: str,
    config: dict[str, Any],
    filename: str | None = None,
) -> Call[None]:
    if filename is None:
        filename = wav.name if isinstance(wav, Path) else f"{entry_id}.wav"
    return Call(
        "PUT",
        _cache(agent, entry_id, "details"),
        _none,
        files={"file": (filename, read_audio(wav), "audio/wav")},
        data={"settings": json.dumps({"text": text, "config": config})},
    )


def preview(
    agent: str, entry_id: str | int, text: str, config: dict[str, Any], language: str | None
) -> Call[bytes]:
    body: dict[str, Any] = {"text": text, "config": config}
    if language is not None:
        body["language"] = language
    return Call("POST", _cache(agent, entry_id, "synthesize"), _bytes, json=body)


def delete_entry(agent: str, entry_id: str | int) -> Call[None]:
    return Call("DELETE", _cache(agent, entry_id), _none)


def bulk_delete(agent: str, ids: Sequence[str | int]) -> Call[BulkDeleteResult]:
    return Call(
        "POST",
        _cache(agent, "bulk-delete"),
        lambda r: BulkDeleteResult.from_wire(r.json()),
        json={"ids": [str(i) for i in ids]},
    )


def regenerate(agent: str, entry_id: str | int) -> Call[Entry]:
    return Call("POST", _cache(agent, entry_id, "regenerate"), lambda r: Entry.from_wire(r.json()))


def pin(agent: str, entry_id: str | int, pinned: bool = True) -> Call[Entry]:
    method = "PUT" if pinned else "DELETE"
    return Call(method, _cache(agent, entry_id, "pin"), lambda r: Entry.from_wire(r.json()))


def warm(agent: str, phrases: Sequence[Phrase], pin: bool = True) -> Call[WarmResult]:
    return Call(
        "POST",
        _cache(agent, "warm"),
        lambda r: WarmResult.from_wire(r.json()),
        json={"phrases": [p.body() for p in phrases], "pin": pin},
    )


def stats(agent: str, top: int = 10) -> Call[Stats]:
    return Call(
        "GET", _cache(agent, "stats"), lambda r: Stats.from_wire(r.json()), [("top", str(top))]
    )


def tts(agent: str, phrase: Phrase, output_format: str | None = None) -> Call[Speech]:
    body = phrase.body()
    if output_format is not None:
        body["output_format"] = output_format
    return Call("POST", f"/v1/agents/{_seg(agent)}/tts", _speech, json=body)


def lookup(agent: str, phrase: Phrase, output_format: str | None = None) -> Call[Speech | None]:
    body = phrase.body()
    if output_format is not None:
        body["output_format"] = output_format
    return Call("POST", _cache(agent, "lookup"), _speech, json=body, absent=NotCached)


def lookup_batch(agent: str, phrases: Sequence[Phrase]) -> Call[list[PhraseStatus]]:
    return Call(
        "POST",
        _cache(agent, "lookup-batch"),
        lambda r: [PhraseStatus.from_wire(p) for p in r.json()["results"]],
        json={"phrases": [p.body() for p in phrases]},
    )


def store(agent: str, phrase: Phrase, wav: Audio) -> Call[StoreResult]:
    return Call(
        "POST",
        _cache(agent, "store"),
        lambda r: StoreResult.from_wire(r.json()),
        files={"file": ("take.wav", read_audio(wav), "audio/wav")},
        data={"settings": json.dumps(phrase.body())},
    )


def list_takes(agent: str, entry_id: str | int) -> Call[list[Take]]:
    return Call(
        "GET",
        _cache(agent, entry_id, "history"),
        lambda r: [Take.from_wire(t) for t in r.json()["takes"]],
    )


def download_take(
    agent: str, entry_id: str | int, take_id: str | int, output_format: str | None = None
) -> Call[bytes]:
    params = [("output_format", output_format)] if output_format else []
    return Call("GET", _cache(agent, entry_id, "history", take_id, "file"), _bytes, params=params)


def restore_take(agent: str, entry_id: str | int, take_id: str | int) -> Call[Entry]:
    return Call(
        "POST",
        _cache(agent, entry_id, "history", take_id, "restore"),
        lambda r: Entry.from_wire(r.json()),
    )


TAR = "application/x-tar"


def export(agent: str) -> Call[bytes]:
    return Call("GET", _cache(agent, "export"), _bytes, slow=True)


def import_archive(
    agent: str, archive: Source, on_chunk: OnChunk | None = None
) -> Call[ImportReport]:
    return Call(
        "POST",
        _cache(agent, "import"),
        lambda r: ImportReport.from_wire(r.json()),
        upload=Upload(archive, on_chunk),
        headers={"Content-Type": TAR},
        slow=True,
    )


def upload_takes(
    agent: str,
    archive: Source,
    voice: str | None = None,
    language: str | None = None,
    mapping: str | None = None,
    on_chunk: OnChunk | None = None,
) -> Call[TakesReport]:
    given = {"voice": voice, "language": language, "map": mapping}
    return Call(
        "POST",
        _cache(agent, "takes"),
        lambda r: TakesReport.from_wire(r.json()),
        params=[(k, v) for k, v in given.items() if v],
        upload=Upload(archive, on_chunk),
        headers={"Content-Type": TAR},
        slow=True,
    )


# --- agents --------------------------------------------------------------------------------


def list_agents(account: str) -> Call[list[Agent]]:
    return Call(
        "GET",
        f"/v1/accounts/{_seg(account)}/agents",
        lambda r: [Agent.from_wire(a) for a in r.json()],
    )


def create_agent(
    account: str,
    name: str,
    agent_id: str | None = None,
    greeting: str | None = None,
    language: str = "en-GB",
    voice: str | None = None,
) -> Call[Agent]:
    body: dict[str, Any] = {
        "name": name,
        "responseSettings": {"greeting": greeting or name, "languageCode": language},
    }
    if agent_id is not None:
        body["agentId"] = agent_id
    if voice is not None:
        body["voiceSettings"] = {"voiceId": voice}
    return Call(
        "POST",
        f"/v1/accounts/{_seg(account)}/agents",
        lambda r: Agent.from_wire(r.json()),
        json=body,
    )


def delete_agent(agent: str) -> Call[None]:
    return Call("DELETE", f"/v1/agents/{_seg(agent)}", _none)


def duplicate_agent(agent: str, new_name: str, new_agent_id: str | None = None) -> Call[Agent]:
    body: dict[str, Any] = {"newAgentName": new_name}
    if new_agent_id is not None:
        body["newAgentId"] = new_agent_id
    return Call(
        "POST",
        f"/v1/agents/{_seg(agent)}/duplicate",
        lambda r: Agent.from_wire(r.json()),
        json=body,
    )


def get_cache_policy(agent: str) -> Call[CachePolicy]:
    return Call(
        "GET", f"/v1/agents/{_seg(agent)}/cache-policy", lambda r: CachePolicy.from_wire(r.json())
    )


def set_cache_policy(agent: str, policy: CachePolicy) -> Call[CachePolicy]:
    return Call(
        "PUT",
        f"/v1/agents/{_seg(agent)}/cache-policy",
        lambda r: CachePolicy.from_wire(r.json()),
        json=policy.to_wire(),
    )


# --- voice library -------------------------------------------------------------------------


def _voices(account: str, *rest: str) -> str:
    tail = "".join(f"/{_seg(part)}" for part in rest)
    return f"/v1/accounts/{_seg(account)}/voice-library{tail}"


def list_voices(
    account: str,
    language: str | None = None,
    gender: str | None = None,
    provider: str | None = None,
    is_poly_voice: bool | None = None,
) -> Call[list[Voice]]:
    given = {"language": language, "gender": gender, "provider": provider}
    params = [(k, v) for k, v in given.items() if v is not None]
    if is_poly_voice is not None:
        params.append(("isPolyVoice", "true" if is_poly_voice else "false"))
    return Call(
        "GET",
        _voices(account),
        lambda r: [Voice.from_wire(v) for v in r.json()["voices"]],
        params=params,
    )


def _voice(response: httpx.Response) -> Voice:
    return Voice.from_wire(response.json()["voice"])


def create_voice(
    account: str,
    name: str,
    provider: str,
    provider_voice_id: str,
    config: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Call[Voice]:
    body: dict[str, Any] = {
        "name": name,
        "provider": provider,
        "providerVoiceId": provider_voice_id,
        "config": config or {},
    }
    if metadata is not None:
        body["voiceMetadata"] = metadata
    return Call("POST", _voices(account), _voice, json=body)


def get_voice(account: str, voice_id: str) -> Call[Voice]:
    return Call("GET", _voices(account, voice_id), _voice)


def update_voice(account: str, voice_id: str, changes: dict[str, Any]) -> Call[Voice]:
    return Call("PATCH", _voices(account, voice_id), _voice, json=changes)


def voice_sample(account: str, voice_id: str) -> Call[VoiceSample]:
    return Call(
        "GET", _voices(account, voice_id, "sample"), lambda r: VoiceSample.from_wire(r.json())
    )


def audit_log(
    account: str,
    limit: int = 50,
    offset: int = 0,
    operation: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> Call[AuditPage]:
    given = {"operation": operation, "from": since, "to": until}
    params = [("limit", str(limit)), ("offset", str(offset))]
    params += [(k, v) for k, v in given.items() if v is not None]
    return Call(
        "GET",
        f"/v1/accounts/{_seg(account)}/audit-log",
        lambda r: AuditPage.from_wire(r.json()),
        params=params,
    )


def whoami() -> Call[Whoami]:
    return Call("GET", "/v1/whoami", lambda r: Whoami.from_wire(r.json()))


# --- operations ----------------------------------------------------------------------------


def health() -> Call[dict[str, Any]]:
    return Call("GET", "/healthz", _json)


def ready() -> Call[dict[str, Any]]:
    return Call("GET", "/readyz", _json)

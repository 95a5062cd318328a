"""The transfer commands against a running server (``--url``/``--key``): plain httpx calls
of the export, import and takes routes, streamed both ways so a large archive never sits in
memory. Small on purpose: the general client (``audiocache.client``) can take them over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from audiocache.errors import AudioCacheError

CHUNK = 256 * 1024
# Connecting and sending are bounded; the answer of an import comes once the server has
# verified and stored the whole archive, which takes as long as the archive is large.
TIMEOUT = httpx.Timeout(30.0, read=None)
OnBytes = Callable[[int], None]


class RemoteError(AudioCacheError):
    """The server's refusal (its envelope's message and code), or no server at all."""

    def __init__(self, message: str, status: int = 0, error_code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


def _base(url: str, agent: str) -> str:
    return f"{url.rstrip('/')}/v1/agents/{quote(agent, safe='')}/audio-cache"


def _headers(key: str | None, **extra: str) -> dict[str, str]:
    return {**({"X-API-KEY": key} if key else {}), **extra}


def _refusal(response: httpx.Response) -> RemoteError:
    response.read()
    try:
        body = response.json()
        return RemoteError(body["error_message"], response.status_code, body["error_code"])
    except (ValueError, KeyError, TypeError):
        return RemoteError(f"HTTP {response.status_code}: {response.text[:200]}")


def _chunks(handle: IO[bytes], on_bytes: OnBytes | None) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        if on_bytes is not None:
            on_bytes(len(chunk))
        yield chunk


@contextmanager
def _calling(url: str) -> Iterator[None]:
    try:
        yield
    except httpx.TransportError as exc:
        raise RemoteError(f"cannot reach {url}: {exc}") from exc


def download_export(
    url: str, key: str | None, agent: str, out: IO[bytes], on_bytes: OnBytes
) -> int:
    """``GET …/export`` into ``out``; returns the bytes written."""
    written = 0
    with (
        _calling(url),
        httpx.stream(
            "GET", f"{_base(url, agent)}/export", headers=_headers(key), timeout=TIMEOUT
        ) as response,
    ):
        if response.status_code != 200:
            raise _refusal(response)
        for chunk in response.iter_bytes(CHUNK):
            out.write(chunk)
            written += len(chunk)
            on_bytes(len(chunk))
    return written


def upload(
    url: str,
    key: str | None,
    agent: str,
    route: str,
    archive: Path,
    on_bytes: OnBytes | None = None,
    params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``POST …/import`` or ``…/takes`` with the archive streamed from disk; the JSON answer."""
    with archive.open("rb") as handle, _calling(url):
        response = httpx.post(
            f"{_base(url, agent)}/{route}",
            content=_chunks(handle, on_bytes),
            params={k: v for k, v in (params or {}).items() if v},
            headers=_headers(
                key,
                **{
                    "Content-Type": "application/x-tar",
                    "Content-Length": str(archive.stat().st_size),
                },
            ),
            timeout=TIMEOUT,
        )
    if response.status_code != 200:
        raise _refusal(response)
    return dict(response.json())

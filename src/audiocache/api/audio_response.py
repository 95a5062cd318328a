"""Serve a stored blob over HTTP: ETag, HEAD, conditional GET and byte ranges.

Ranges follow RFC 9110 as Starlette's FileResponse reads it: ``bytes=a-b``, ``a-``, ``-n``,
several at once as ``multipart/byteranges``; ``If-Range`` with a different validator
serves the whole file; nothing satisfiable is 416 with ``Content-Range: bytes */size``
(in the error envelope). A malformed Range header is ignored, as the RFC allows.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from audiocache.api.errors import correlation_id, envelope_bytes
from audiocache.api.presign import Location, Presigner
from audiocache.cache.variants import StoredAudio
from audiocache.config import Settings
from audiocache.errors import RangeNotSatisfiable, StorageUnavailable
from audiocache.storage.blobs.base import CHUNK, BlobStore

MAX_RANGES = 20
OFFLOAD_HEADER = b"x-accel-redirect"
_SET_BY_NGINX = (b"content-length", b"accept-ranges")
CACHE_CONTROL = "private, no-cache"
Opener = Callable[[int, int], AsyncIterator[bytes]]


def offload_of(settings: Settings) -> str | None:
    """Where X-Accel-Redirect points (``Settings.offload``), or None: send the bytes."""
    return settings.offload_location if settings.offload == "x-accel-redirect" else None


def content_disposition(filename: str) -> str:
    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """Half-open [start, end) ranges, merged; None when the header is malformed (ignore it)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    parts = spec.split(",")
    if len(parts) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    for part in parts:
        first, dash, last = part.strip().partition("-")
        if not dash or not (first.isdigit() or last.isdigit()):
            return None
        if (first and not first.isdigit()) or (last and not last.isdigit()):
            return None
        if not first:  # suffix: the last N bytes
            count = int(last)
            if count == 0:
                continue
            ranges.append((max(0, size - count), size))
            continue
        start = int(first)
        end = min(int(last) + 1, size) if last else size
        if last and int(last) < start:
            return None
        if start < size:
            ranges.append((start, end))
    if not ranges:
        raise RangeNotSatisfiable(size)
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        if start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


async def blob_response(
    blobs: BlobStore,
    sha256: str,
    size: int,
    *,
    media_type: str,
    filename: str | None = None,
    extra_headers: dict[str, str] | None = None,
    offload: str | None = None,
    presigner: Presigner | None = None,
) -> BlobResponse:
    """A response for a stored blob, opened before any header goes out: a lost blob is a 503
    in the envelope, not a 200 that breaks off. Opening is the read itself (on S3 one GET,
    no HEAD before it), and once open, a concurrent delete cannot take the bytes away: a
    folder's file stays readable through its descriptor, an S3 GET streams what it found.

    With ``offload`` (a location prefix) a blob in the local folder is left to nginx to send
    (``deploy/nginx-offload.conf``): the folder's layout ``<sha[:2]>/<sha>`` under that
    location; then only its presence is checked. With ``presigner`` (S3) a GET is answered
    307 to a presigned URL of the object (``api/presign.py``), also once its presence is
    checked (a HEAD): a lost blob stays audiocache's 503, not S3's 404."""
    missing = StorageUnavailable(
        "The audio is missing from storage; `audiocache check` lists what is affected"
    )
    redirect = (
        f"{offload}{sha256[:2]}/{sha256}"
        if offload is not None and blobs.local_path(sha256) is not None
        else None
    )
    location = (
        presigner.location(
            sha256, media_type, CACHE_CONTROL, content_disposition(filename) if filename else None
        )
        if presigner is not None
        else None
    )
    opened: tuple[bytes, AsyncIterator[bytes]] | None = None
    if redirect is not None or location is not None:
        if await blobs.stat(sha256) is None:
            raise missing
    else:
        chunks = blobs.open_range(sha256, 0, size)
        try:
            opened = (await anext(chunks, b""), chunks)
        except KeyError:
            raise missing from None
    return BlobResponse(
        open=lambda start, end: blobs.open_range(sha256, start, end),
        size=size,
        etag=sha256,
        media_type=media_type,
        filename=filename,
        extra_headers=extra_headers,
        blob=sha256,
        redirect=redirect,
        location=location,
        opened=opened,
    )


async def audio_response(
    blobs: BlobStore,
    audio: StoredAudio,
    *,
    filename: str | None = None,
    extra_headers: dict[str, str] | None = None,
    offload: str | None = None,
    presigner: Presigner | None = None,
) -> BlobResponse:
    """A stored blob, or a conversion storage could not keep (served from memory, with the
    same ETag, ranges and headers it would have had once stored)."""
    if audio.data is None:
        return await blob_response(
            blobs,
            audio.sha256,
            audio.size,
            media_type=audio.media_type,
            filename=filename,
            extra_headers=extra_headers,
            offload=offload,
            presigner=presigner,
        )
    data = audio.data
    return BlobResponse(
        open=lambda start, end: _slices(data, start, end),
        size=len(data),
        etag=audio.sha256,
        media_type=audio.media_type,
        filename=filename,
        extra_headers=extra_headers,
    )


async def _slices(data: bytes, start: int, end: int) -> AsyncIterator[bytes]:
    for position in range(start, end, CHUNK):
        yield data[position : min(position + CHUNK, end)]


class BlobResponse(Response):
    """An ASGI response for one blob; ``open`` yields bytes [start, end) of it.

    A Response whose ``headers`` are those of the whole-file 200 (built once, in
    ``Response.__init__``, and sent as they are: the header block is not rebuilt per request);
    it renders its body itself, with ranges and conditional requests. Immutable once built,
    so one instance may answer many requests (the hot path's memo, ``api/hot_path.py``).
    """

    def __init__(
        self,
        *,
        open: Opener,
        size: int,
        etag: str,
        media_type: str,
        filename: str | None = None,
        extra_headers: dict[str, str] | None = None,
        blob: str | None = None,
        data: bytes | None = None,
        redirect: str | None = None,
        location: Location | None = None,
        opened: tuple[bytes, AsyncIterator[bytes]] | None = None,
    ) -> None:
        self.open = open
        # The body already open (its first chunk read) by ``blob_response``: what the first
        # request from byte 0 is served from; anything else closes it unused. Later
        # requests (a memo'd response answers many) read anew through ``open``.
        self.opened = opened
        self.redirect = redirect  # X-Accel-Redirect target: nginx sends the bytes
        # signs a presigned S3 URL per request (a memo'd response outlives any one URL)
        self.location = location
        self.blob = blob  # the stored blob served, if it is one (not a conversion in memory)
        self.data = data  # the whole body, when it is in memory
        self.size = size
        self.etag = f'"{etag}"'
        self.filename = filename
        self.extra_headers = extra_headers or {}
        self._media = media_type
        super().__init__(
            status_code=200, headers=self._header_map(size, media_type), media_type=media_type
        )
        self._offloaded = [
            # nginx sets its own length and Accept-Ranges for the file it sends
            *((k, v) for k, v in self.raw_headers if k not in _SET_BY_NGINX),
            (b"content-length", b"0"),
            (OFFLOAD_HEADER, (redirect or "").encode("latin-1")),
        ]
        self._not_modified = [
            (b"etag", self.etag.encode()),
            (b"cache-control", b"private, no-cache"),
        ]

    @functools.cached_property
    def header_lines(self) -> bytes:
        """The whole-file 200's header lines as they go on the wire (``api/hot_lane.py``
        writes them itself)."""
        return b"".join(b"%s: %s\r\n" % (name, value) for name, value in self.raw_headers)

    async def reopened(self) -> BlobResponse | None:
        """A copy of this (memo'd) response with its blob opened anew before any header goes
        out, as ``blob_response`` opens it; None if the blob is gone. Opening is the read
        itself, so a delete after it cannot cut the body short."""
        chunks = self.open(0, self.size)
        try:
            first = await anext(chunks, b"")
        except KeyError:
            return None
        return BlobResponse(
            open=self.open,
            size=self.size,
            etag=self.etag.strip('"'),
            media_type=self._media,
            filename=self.filename,
            extra_headers=self.extra_headers,
            blob=self.blob,
            redirect=self.redirect,
            location=self.location,
            opened=(first, chunks),
        )

    async def read_opened(self) -> bytes | None:
        """The whole body from what ``blob_response`` opened (no second read), if it is
        still unused; the stream is closed either way."""
        if self.opened is None:
            return None
        first, rest = self.opened
        self.opened = None
        parts = [first]
        try:
            async for chunk in rest:
                parts.append(chunk)
        finally:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()
        return b"".join(parts)

    def in_memory(self, data: bytes) -> BlobResponse:
        """The same response with its bytes already in memory (the hot path's memo)."""
        return BlobResponse(
            open=lambda start, end: _slices(data, start, end),
            size=self.size,
            etag=self.etag.strip('"'),
            media_type=self._media,
            filename=self.filename,
            extra_headers=self.extra_headers,
            blob=self.blob,
            data=data,
            redirect=self.redirect,
            location=self.location,
        )

    @property
    def offloaded(self) -> bool:
        """Whether a GET of it is answered without its bytes (nginx or S3 sends them)."""
        return self.redirect is not None or self.location is not None

    def _header_map(self, length: int, content_type: str) -> dict[str, str]:
        headers = {
            "content-type": content_type,
            "content-length": str(length),
            "accept-ranges": "bytes",
            "etag": self.etag,
            "cache-control": CACHE_CONTROL,
            **self.extra_headers,
        }
        if self.filename:
            headers["content-disposition"] = content_disposition(self.filename)
        return headers

    def _header_block(self, length: int, content_type: str) -> list[tuple[bytes, bytes]]:
        headers = self._header_map(length, content_type)
        return [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._respond(scope, send)
        finally:
            await self.close()

    async def close(self) -> None:
        """Let go of the body ``blob_response`` opened, if no request used it."""
        if self.opened is not None:
            _first, rest = self.opened
            self.opened = None
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _respond(self, scope: Scope, send: Send) -> None:
        if_none_match = range_header = if_range = None
        for name, value in scope["headers"]:  # ASGI header names are lower case
            if name == b"range":
                range_header = value.decode("latin-1")
            elif name == b"if-none-match":
                if_none_match = value.decode("latin-1")
            elif name == b"if-range":
                if_range = value.decode("latin-1")
        head_only = scope["method"] == "HEAD"
        if if_none_match and self._matches(if_none_match):
            await send(
                {"type": "http.response.start", "status": 304, "headers": self._not_modified}
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if self.redirect is not None and if_range is None:
            await self._send_offloaded(scope, send, range_header)
            return
        if self.location is not None and if_range is None and not head_only:
            await self._send_presigned(scope, send, range_header)
            return
        ranges = None
        if range_header and (if_range is None or if_range.strip() == self.etag):
            try:
                ranges = parse_ranges(range_header, self.size)
            except RangeNotSatisfiable as exc:
                await self._send_416(scope, send, exc)
                return
        if not ranges:
            await self._send_whole(send, head_only)
        elif len(ranges) == 1:
            await self._send_single(send, head_only, *ranges[0])
        else:
            await self._send_multi(send, head_only, ranges)

    async def _refused_range(self, scope: Scope, send: Send, range_header: str | None) -> bool:
        """A range nothing of the blob satisfies, answered here (416 in the envelope) when
        someone else (nginx, S3) would send the bytes."""
        if range_header:
            try:
                parse_ranges(range_header, self.size)
            except RangeNotSatisfiable as exc:
                await self._send_416(scope, send, exc)
                return True
        return False

    async def _send_offloaded(self, scope: Scope, send: Send, range_header: str | None) -> None:
        """Headers only, and nginx sends the file (its ranges are RFC 9110's too). A range
        nothing of the file satisfies is still answered here, in the envelope; a request with
        If-Range is never offloaded (nginx would compare it with a validator of its own)."""
        if await self._refused_range(scope, send, range_header):
            return
        await send({"type": "http.response.start", "status": 200, "headers": self._offloaded})
        await send({"type": "http.response.body", "body": b""})

    async def _send_presigned(self, scope: Scope, send: Send, range_header: str | None) -> None:
        """307 to the object's presigned URL, signed now; the client sends its Range to S3
        (RFC 9110's too). As with X-Accel, a range nothing satisfies is answered here. HEAD
        (a URL signs one method) and If-Range (S3's ETag is not ours) never come here."""
        assert self.location is not None
        if await self._refused_range(scope, send, range_header):
            return
        headers = [
            (b"location", self.location().encode("latin-1")),
            (b"content-length", b"0"),
            # the URL is a credential: no cache keeps it past this response
            (b"cache-control", b"no-store"),
            *((k.encode(), v.encode("latin-1")) for k, v in self.extra_headers.items()),
        ]
        await send({"type": "http.response.start", "status": 307, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def _matches(self, header: str) -> bool:
        tags = [t.strip().removeprefix("W/") for t in header.split(",")]
        return "*" in tags or self.etag in tags

    async def _send_whole(self, send: Send, head_only: bool) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        if self.data is not None and not head_only:
            await send({"type": "http.response.body", "body": self.data})
            return
        await self._stream(send, 0, self.size, head_only, last=True)

    async def _send_single(self, send: Send, head_only: bool, start: int, end: int) -> None:
        headers = self._header_block(end - start, self._media)
        headers.append((b"content-range", f"bytes {start}-{end - 1}/{self.size}".encode()))
        await send({"type": "http.response.start", "status": 206, "headers": headers})
        await self._stream(send, start, end, head_only, last=True)

    async def _send_multi(self, send: Send, head_only: bool, ranges: list[tuple[int, int]]) -> None:
        boundary = secrets.token_hex(12)
        preambles = [
            (
                f"--{boundary}\r\nContent-Type: {self._media}\r\n"
                f"Content-Range: bytes {start}-{end - 1}/{self.size}\r\n\r\n"
            ).encode()
            for start, end in ranges
        ]
        closing = f"\r\n--{boundary}--\r\n".encode()
        length = sum(len(p) for p in preambles) + sum(e - s for s, e in ranges)
        length += 2 * (len(ranges) - 1) + len(closing)
        content_type = f"multipart/byteranges; boundary={boundary}"
        await send(
            {
                "type": "http.response.start",
                "status": 206,
                "headers": self._header_block(length, content_type),
            }
        )
        if head_only:
            await send({"type": "http.response.body", "body": b""})
            return
        for index, ((start, end), preamble) in enumerate(zip(ranges, preambles, strict=True)):
            prefix = b"\r\n" + preamble if index else preamble
            await send({"type": "http.response.body", "body": prefix, "more_body": True})
            await self._stream(send, start, end, False, last=False)
        await send({"type": "http.response.body", "body": closing})

    async def _stream(self, send: Send, start: int, end: int, head_only: bool, last: bool) -> None:
        if head_only or start >= end:
            if last:
                await send({"type": "http.response.body", "body": b""})
            return
        position = start
        async for chunk in self._chunks(start, end):
            position += len(chunk)
            # The last chunk ends the response itself: one send fewer per request.
            more = not last or position < end
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
        if last and position < end:  # the blob was shorter than promised: end it anyway
            await send({"type": "http.response.body", "body": b""})

    async def _chunks(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end): from the opened body while it is at ``start``, else read anew."""
        if self.opened is None or start != 0:
            await self.close()
            async for chunk in self.open(start, end):
                yield chunk
            return
        first, rest = self.opened
        self.opened = None  # taken, with no await before: no other request can take it too
        position = 0
        try:
            chunk = first
            while True:
                if position + len(chunk) >= end:
                    yield chunk[: end - position]
                    return
                if chunk:
                    yield chunk
                position += len(chunk)
                chunk = await anext(rest, b"")
                if not chunk:  # shorter than promised: _stream ends the response
                    return
        finally:
            aclose = getattr(rest, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _send_416(self, scope: Scope, send: Send, exc: RangeNotSatisfiable) -> None:
        body = envelope_bytes(correlation_id(scope), exc.error_code, exc.message)
        await send(
            {
                "type": "http.response.start",
                "status": 416,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"content-range", f"bytes */{self.size}".encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

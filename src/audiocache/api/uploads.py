"""Upload bodies (replace file, replace details): capped in number, spooled to disk, timed.

At most ``max_concurrent_uploads`` uploads are read at once in a worker; one more gets 503
UPLOADS_BUSY before a byte of its body is read. A body goes into a SpooledTemporaryFile that
moves to an unlinked file in the spool folder past ``upload_spool_bytes``, so a slow or
stalled upload holds at most that much memory. The WAV is read back into memory only once
it is complete (parsing and storing need it whole): the cap times ``max_upload_bytes``
bounds that, and the spool (its file too) is gone when the request ends, however it ends.
Reading goes through ``body_chunks``, so the body timeouts apply.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from types import TracebackType
from typing import IO, TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from audiocache.api.requests import app_settings, body_chunks, refuse_declared
from audiocache.config import Settings
from audiocache.errors import (
    EmptyPayload,
    InvalidInput,
    InvalidSettings,
    PayloadTooLarge,
    StorageFull,
    StorageUnavailable,
    UploadsBusy,
)

if TYPE_CHECKING:  # python-multipart declares its callback types for checkers only
    from python_multipart.multipart import MultipartCallbacks

MULTIPART_OVERHEAD = 64 * 1024  # part headers and boundaries around the file
MAX_FIELD_BYTES = 256 * 1024  # the settings part (and any other small field)
MAX_PARTS = 4
RETRY_AFTER_SECONDS = 2.0  # an upload is stored within a second or two once it has arrived


class UploadGate:
    """How many uploads a worker reads at once; past the limit, refuse rather than queue."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self.active >= self.limit:
            raise UploadsBusy(
                f"{self.limit} uploads are in progress; try again shortly",
                retry_after=RETRY_AFTER_SECONDS,
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def upload_slot(request: Request) -> AbstractContextManager[None]:
    """One of the app's upload slots for this request (503 UPLOADS_BUSY if none is free)."""
    state = request.app.state
    gate: UploadGate | None = getattr(state, "upload_gate", None)
    if gate is None:  # one per app, made on first use (no await in between: no race)
        gate = state.upload_gate = UploadGate(app_settings(request).max_concurrent_uploads)
    return gate.slot()


class Spool:
    """An upload's bytes as they arrive: in memory up to a threshold, then in a file."""

    def __init__(self, settings: Settings, limit: int, what: str = "file") -> None:
        self.limit = limit
        self.what = what
        self.size = 0
        directory = settings.resolved_upload_spool_dir()
        with _disk_errors():
            directory.mkdir(parents=True, exist_ok=True)
            # closed by close() / __exit__, whichever way the request ends
            self._file = SpooledTemporaryFile(  # noqa: SIM115
                max_size=settings.upload_spool_bytes, dir=str(directory)
            )

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"The {self.what} exceeds the limit of {self.limit} bytes")
        # A write of one received chunk (<= 256 KiB) into the page cache: fine on the loop.
        with _disk_errors():
            self._file.write(data)

    def read_all(self) -> bytes:
        with _disk_errors():
            self._file.seek(0)
            return self._file.read()

    def file(self) -> IO[bytes]:
        """The spooled bytes as a seekable file, from the start (an archive to read)."""
        with _disk_errors():
            self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _exc: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.close()


@contextmanager
def _disk_errors() -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("No space left to receive the upload") from exc
        raise StorageUnavailable(f"Could not spool the upload: {exc.strerror}") from exc


async def read_upload(request: Request, limit: int) -> bytes:
    """A raw upload body, spooled while it arrives; refused as soon as it passes ``limit``."""
    refuse_declared(request, limit, "file")
    with Spool(app_settings(request), limit) as spool:
        async for chunk in body_chunks(request):
            spool.write(chunk)
        if spool.size == 0:
            raise EmptyPayload("The file is empty")
        return spool.read_all()


@dataclass(frozen=True)
class DetailsForm:
    wav: bytes
    filename: str | None
    settings_text: str


async def read_details_form(request: Request, limit: int) -> DetailsForm:
    """The multipart body of ``PUT …/details``: a ``file`` part (spooled) and ``settings``."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise InvalidInput("Send multipart/form-data with a 'file' part and a 'settings' part")
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidInput("Malformed multipart body: the Content-Type has no boundary")
    refuse_declared(request, limit + MULTIPART_OVERHEAD, "upload")
    with Spool(app_settings(request), limit) as spool:
        parts = _DetailsParts(spool)
        try:
            parser = MultipartParser(boundary, parts.callbacks())
            received = 0
            async for chunk in body_chunks(request):
                received += len(chunk)
                if received > limit + MULTIPART_OVERHEAD:
                    raise PayloadTooLarge(f"The upload exceeds the limit of {limit} bytes")
                parser.write(chunk)
            parser.finalize()
        except FormParserError as exc:
            raise InvalidInput(f"Malformed multipart body: {exc}") from exc
        if not parts.ended:
            raise InvalidInput("Malformed multipart body: it ends before the closing boundary")
        if not parts.file_seen:
            raise InvalidInput("The 'file' part is missing (send it as a file part)")
        if parts.settings is None:
            raise InvalidInput("The 'settings' part is missing")
        try:
            settings_text = parts.settings.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSettings("The 'settings' part is not UTF-8 text") from exc
        if spool.size == 0:
            raise EmptyPayload("The 'file' part is empty")
        return DetailsForm(spool.read_all(), parts.filename, settings_text)


class _DetailsParts:
    """python-multipart callbacks: the file part into the spool, small fields in memory."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.parts = 0
        self.ended = False
        self.file_seen = False
        self.filename: str | None = None
        self.settings: bytearray | None = None
        self._target: Spool | bytearray | None = None
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidInput(f"Malformed multipart body: more than {MAX_PARTS} parts")
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]  # python-multipart caps the header's size

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def on_headers_finished(self) -> None:
        _disposition, options = parse_options_header(self._disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidInput("Malformed multipart body: a part has no Content-Disposition name")
        name = _text(raw_name)
        raw_filename = options.get(b"filename")
        if name == "file":
            if raw_filename is None:
                raise InvalidInput("The 'file' part is missing (send it as a file part)")
            if self.file_seen:
                raise InvalidInput("Malformed multipart body: more than one 'file' part")
            self.file_seen = True
            self.filename = _text(raw_filename)
            self._target = self.spool
        elif name == "settings":
            if self.settings is not None:
                raise InvalidInput("Malformed multipart body: more than one 'settings' part")
            self.settings = self._target = bytearray()
        else:
            self._target = bytearray()  # another field: read (size-capped) and dropped

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if isinstance(self._target, Spool):
            self._target.write(piece)
        elif self._target is not None:
            if len(self._target) + len(piece) > MAX_FIELD_BYTES:
                raise InvalidInput(
                    f"Malformed multipart body: a field part exceeds {MAX_FIELD_BYTES} bytes"
                )
            self._target += piece

    def on_part_end(self) -> None:
        self._target = None

    def on_end(self) -> None:
        self.ended = True


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")

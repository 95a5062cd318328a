"""Loopback fakes of the cloud TTS APIs: one Starlette app per provider, each under its own
uvicorn server on 127.0.0.1, answering in the provider's shapes and recording every request.

By default a fake behaves like the provider: it checks the key (and answers a wrong one the
provider's way), refuses the voice ``missing``, and returns audio in the format asked for.
``fake.script(Reply(...), ...)`` queues answers for the next requests instead; a ``Reply``
with status 200 and no body is the normal audio answer, any other status without a body gets
the provider's error shape. ``delay`` holds the answer back; ``drip`` trickles the body.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import socket
import struct
import threading
import time
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

API_KEY = "test-key-123"
JSON = "application/json"


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    delay: float = 0.0
    drip: float = 0.0  # seconds between 2-byte chunks


def pcm_tone(rate: int, seconds: float = 0.2) -> bytes:
    frames = int(rate * seconds)
    return struct.pack(
        f"<{frames}h", *(int(6000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(frames))
    )


def wav_file(pcm: bytes, rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(pcm))
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(pcm))
        + pcm
    )


def _error(status: int, payload: Any) -> Reply:
    return Reply(status, json.dumps(payload).encode(), content_type=JSON)


class FakeProvider:
    """The shared machinery; subclasses answer like one provider."""

    name = ""
    path = ""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self.url = ""

    def script(self, *replies: Reply) -> None:
        self._script.extend(replies)

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()

    # -- what a provider defines -------------------------------------------------------
    def authorized(self, rec: Recorded) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> Reply:
        return _error(401, {"error": {"message": "Invalid API key"}})

    def error_reply(self, status: int) -> Reply:
        return _error(status, {"error": {"message": f"fake {self.name} error {status}"}})

    def check(self, rec: Recorded) -> Reply | None:
        """A 4xx for a request the provider would refuse (bad shape or unknown voice)."""
        return None

    def audio(self, rec: Recorded) -> Reply:
        raise NotImplementedError

    def malformed(self) -> Reply:
        return Reply(200, b"\x01\x02\x03", content_type="audio/pcm")

    # -- serving ---------------------------------------------------------------------
    def answer(self, rec: Recorded) -> Reply:
        if self._script:
            reply = self._script.popleft()
            if reply.body is None:
                base = self.audio(rec) if reply.status == 200 else self.error_reply(reply.status)
                reply.body, reply.content_type = base.body, reply.content_type or base.content_type
            return reply
        if not self.authorized(rec):
            return self.unauthorized()
        return self.check(rec) or self.audio(rec)

    async def handle(self, request: Request) -> Response:
        rec = Recorded(
            request.method,
            request.url.path,
            dict(request.query_params),
            {k.lower(): v for k, v in request.headers.items()},
            await request.body(),
        )
        self.requests.append(rec)
        reply = self.answer(rec)
        end = time.monotonic() + reply.delay
        while time.monotonic() < end and not await request.is_disconnected():
            await asyncio.sleep(0.02)
        body = reply.body or b""
        if reply.drip:
            return StreamingResponse(
                self._drip(body, reply.drip), reply.status, reply.headers, reply.content_type
            )
        return Response(body, reply.status, reply.headers, reply.content_type)

    @staticmethod
    async def _drip(body: bytes, pause: float) -> AsyncIterator[bytes]:
        for i in range(0, len(body), 2):
            yield body[i : i + 2]
            await asyncio.sleep(pause)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.path, self.handle, methods=["POST"])])


class FakeElevenLabs(FakeProvider):
    name, path = "eleven_labs", "/v1/text-to-speech/{voice_id}"

    def authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("xi-api-key") == API_KEY

    def unauthorized(self) -> Reply:
        return _error(401, {"detail": {"status": "invalid_api_key", "message": "Invalid key"}})

    def check(self, rec: Recorded) -> Reply | None:
        if rec.path.endswith("/missing"):
            detail = {"status": "voice_not_found", "message": "A voice with that id was not found"}
            return _error(404, {"detail": detail})
        if "text" not in rec.json():
            return _error(422, {"detail": [{"loc": ["body", "text"], "msg": "field required"}]})
        return None

    def audio(self, rec: Recorded) -> Reply:
        rate = int(rec.query.get("output_format", "pcm_16000").split("_")[1])
        return Reply(200, pcm_tone(rate), content_type="audio/pcm")


class FakeOpenAI(FakeProvider):
    name, path = "openai", "/v1/audio/speech"

    def authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("authorization") == f"Bearer {API_KEY}"

    def unauthorized(self) -> Reply:
        error = {"message": "Incorrect API key provided", "type": "invalid_request_error"}
        return _error(401, {"error": {**error, "param": None, "code": "invalid_api_key"}})

    def check(self, rec: Recorded) -> Reply | None:
        body = rec.json()
        if body.get("voice") == "missing":
            error = {"message": "Invalid value: 'missing'.", "type": "invalid_request_error"}
            return _error(400, {"error": {**error, "param": "voice", "code": "invalid_value"}})
        if not {"model", "input", "voice"} <= body.keys():
            return _error(400, {"error": {"message": "missing required parameter"}})
        return None

    def audio(self, rec: Recorded) -> Reply:
        return Reply(200, pcm_tone(24000), content_type="audio/pcm")


class FakeGoogle(FakeProvider):
    name, path = "google", "/v1/text:synthesize"

    def authorized(self, rec: Recorded) -> bool:
        return API_KEY in (rec.headers.get("x-goog-api-key"), rec.query.get("key"))

    def unauthorized(self) -> Reply:  # what Google really answers to a wrong key
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        message = "API key not valid. Please pass a valid API key."
        error = {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}
        return _error(400, {"error": {**error, "details": [info]}})

    def check(self, rec: Recorded) -> Reply | None:
        voice = rec.json().get("voice", {})
        if voice.get("name") == "missing" or not voice.get("languageCode"):
            message = "Voice 'missing' does not exist. Is it misspelled?"
            return _error(400, {"error": {"code": 400, "message": message}})
        return None

    def audio(self, rec: Recorded) -> Reply:
        rate = rec.json()["audioConfig"].get("sampleRateHertz", 24000)
        content = base64.b64encode(wav_file(pcm_tone(rate), rate)).decode()
        return Reply(200, json.dumps({"audioContent": content}).encode(), content_type=JSON)

    def malformed(self) -> Reply:
        return Reply(200, b'{"audioContent": "%%% not base64 %%%"}', content_type=JSON)


class FakeMicrosoft(FakeProvider):
    name, path = "microsoft", "/cognitiveservices/v1"

    def authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("ocp-apim-subscription-key") == API_KEY

    def check(self, rec: Recorded) -> Reply | None:
        if rec.headers.get("x-microsoft-outputformat") != "riff-24khz-16bit-mono-pcm":
            return Reply(400, b"Unsupported output format", content_type="text/plain")
        try:
            voice = ET.fromstring(rec.body).find("{http://www.w3.org/2001/10/synthesis}voice")
        except ET.ParseError:
            return Reply(400, b"SSML is not well-formed XML", content_type="text/plain")
        if voice is None or voice.get("name") == "missing":
            return Reply(400, b"Unsupported voice missing.", content_type="text/plain")
        return None

    def audio(self, rec: Recorded) -> Reply:
        return Reply(200, wav_file(pcm_tone(24000), 24000), content_type="audio/x-wav")

    def malformed(self) -> Reply:
        return Reply(200, b"<html>maintenance</html>", content_type="text/html")


class FakeCartesia(FakeProvider):
    name, path = "cartesia", "/tts/bytes"

    def authorized(self, rec: Recorded) -> bool:
        return rec.headers.get("authorization") == f"Bearer {API_KEY}"

    def check(self, rec: Recorded) -> Reply | None:
        body = rec.json()
        if "cartesia-version" not in rec.headers:
            return _error(400, {"error": "Cartesia-Version header is required"})
        if body.get("voice", {}).get("id") == "missing":
            return _error(404, {"error": "Voice not found"})
        if not {"model_id", "transcript", "voice", "output_format"} <= body.keys():
            return _error(400, {"error": "missing required field"})
        return None

    def audio(self, rec: Recorded) -> Reply:
        rate = rec.json()["output_format"]["sample_rate"]
        return Reply(200, pcm_tone(rate), content_type="audio/pcm")


FAKES: dict[str, type[FakeProvider]] = {
    cls.name: cls for cls in (FakeElevenLabs, FakeOpenAI, FakeGoogle, FakeMicrosoft, FakeCartesia)
}


@dataclass
class Served:
    fake: FakeProvider
    server: uvicorn.Server
    thread: threading.Thread


def serve(fake: FakeProvider) -> Served:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(fake.app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"fake {fake.name} server did not start")
        time.sleep(0.01)
    return Served(fake, server, thread)


def serve_all() -> Iterator[dict[str, FakeProvider]]:
    """Start one server per provider; stop them all when the generator is closed."""
    served = [serve(cls()) for cls in FAKES.values()]
    try:
        yield {s.fake.name: s.fake for s in served}
    finally:
        for s in served:
            s.server.should_exit = True
        for s in served:
            s.thread.join(timeout=5)

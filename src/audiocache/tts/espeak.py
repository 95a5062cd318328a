"""espeak-ng as a subprocess: always available, offline, deterministic.

Each synthesis is one espeak-ng process (how many run at once is the engine pool's
business), started at a lowered CPU priority so the event loop serving hits keeps the CPU.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Mapping
from typing import Any

from audiocache.audio.wav import normalize_wav
from audiocache.errors import InvalidAudio, InvalidInput, InvalidVoice, SynthesisFailed
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.workers import lower_process_priority

DEFAULT_WPM = 175
ESPEAK_SAMPLE_RATE = 22050
_STREAM_HEADER_BYTES = 44  # espeak-ng --stdout: RIFF + fmt (16) + data header
MIN_SPEED, MAX_SPEED = 0.25, 4.0


class EspeakEngine:
    provider = "espeak"

    def __init__(
        self, binary: str = "espeak-ng", timeout_seconds: float = 30.0, *, nice: int = 0
    ) -> None:
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} is not installed (apt-get install espeak-ng)")
        self.binary = found
        self.timeout_seconds = timeout_seconds
        self.nice = nice
        self._voices: frozenset[str] | None = None
        self._version: str | None = None

    async def start(self) -> None:
        version = await self._run(["--version"], b"")
        # "eSpeak NG text-to-speech: 1.51  Data at: ..." → "espeak-ng-1.51"
        words = version.decode(errors="replace").split()
        number = next((w for w in words if w[:1].isdigit()), "unknown")
        self._version = f"espeak-ng-{number}"
        listing = (await self._run(["--voices"], b"")).decode(errors="replace").splitlines()
        voices: set[str] = set()
        for line in listing[1:]:
            columns = line.split()
            if len(columns) >= 5 and not columns[4].startswith("mb/"):
                voices.update({columns[1].lower(), columns[4].lower()})
        self._voices = frozenset(voices)

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        return str(config.get("modelId") or self._version or "espeak-ng")

    async def validate_voice(self, voice: str) -> None:
        if self._voices is None:
            await self.start()
        assert self._voices is not None
        if voice.lower() not in self._voices:
            raise InvalidVoice(f"espeak-ng has no voice {voice!r} (try en-us, en-gb, de, fr …)")

    def _args(self, request: SynthesisRequest) -> list[str]:
        speed = float(request.config.get("speed") or 1.0)
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidInput(f"config.speed must be between {MIN_SPEED} and {MAX_SPEED}")
        wpm = max(80, min(450, round(DEFAULT_WPM * speed)))
        args = ["--stdout", "-v", request.voice.lower(), "-s", str(wpm)]
        volume = request.config.get("volume")
        if volume is not None:
            # espeak amplitude 0-200, 100 = normal; config.volume 1.0 = normal
            args += ["-a", str(max(0, min(200, round(100 * float(volume)))))]
        return args

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        await self.validate_voice(request.voice)
        # Text on stdin, never argv: a phrase starting with "-" must not become a flag.
        output = await self._run(self._args(request), request.text.encode("utf-8"), self.nice)
        try:
            return normalize_wav(output)
        except InvalidAudio as exc:
            raise SynthesisFailed(f"espeak-ng produced no usable audio: {exc}") from exc

    def sample_rate_for(self, voice: str) -> int:
        return ESPEAK_SAMPLE_RATE

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        """Raw 16-bit mono PCM as espeak-ng writes it (it synthesizes as it goes)."""
        await self.validate_voice(request.voice)
        process = await asyncio.create_subprocess_exec(
            self.binary,
            *self._args(request),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        lower_process_priority(process.pid, self.nice)
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(request.text.encode("utf-8"))
        process.stdin.close()
        header = b""
        try:
            async with asyncio.timeout(self.timeout_seconds):
                while len(header) < _STREAM_HEADER_BYTES:
                    more = await process.stdout.read(_STREAM_HEADER_BYTES - len(header))
                    if not more:
                        break
                    header += more
                while chunk := await process.stdout.read(65536):
                    yield chunk
                if await process.wait() != 0:
                    raise SynthesisFailed(f"espeak-ng failed with exit code {process.returncode}")
        except TimeoutError as exc:
            raise SynthesisFailed("espeak-ng timed out") from exc
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def _run(self, args: list[str], stdin: bytes, nice: int = 0) -> bytes:
        try:
            # No input, no pipe: espeak-ng may exit (--version) before an empty write reaches
            # the pipe, and uvloop then raises on the closed transport.
            process = await asyncio.create_subprocess_exec(
                self.binary,
                *args,
                stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise SynthesisFailed(f"could not start espeak-ng: {exc.strerror}") from exc
        lower_process_priority(process.pid, nice)
        try:
            out, err = await asyncio.wait_for(
                process.communicate(stdin or None), timeout=self.timeout_seconds
            )
        except TimeoutError as exc:
            raise SynthesisFailed("espeak-ng timed out") from exc
        finally:
            # Timed out or cancelled (the engine pool's deadline, a caller gone): the
            # process goes too, so no synthesis outlives the slot it was given.
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            message = err.decode(errors="replace").strip()[:200]
            raise SynthesisFailed(f"espeak-ng failed: {message or process.returncode}")
        return out

    async def close(self) -> None:
        return None

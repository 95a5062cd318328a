"""espeak-ng as a subprocess: always available, offline, deterministic.

Each synthesis is one espeak-ng process (how many run at once is the engine pool's
business), started and read by the engine's own threads, never by the event loop: the loop
would fork() (a server of 500 MB stalls 60-100 ms per spawn, measured), where
``subprocess.Popen`` in a thread uses vfork and leaves the loop alone. Those threads run
at a lowered CPU priority, which the processes they start inherit, so the loop serving
hits keeps the CPU. A synthesis abandoned (time limit, caller gone) kills its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from audiocache.audio.wav import normalize_wav
from audiocache.errors import InvalidAudio, InvalidInput, InvalidVoice, SynthesisFailed
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.workers import lower_thread_priority

DEFAULT_WPM = 175
ESPEAK_SAMPLE_RATE = 22050
_STREAM_HEADER_BYTES = 44  # espeak-ng --stdout: RIFF + fmt (16) + data header
MIN_SPEED, MAX_SPEED = 0.25, 4.0
T = TypeVar("T")


class EspeakEngine:
    provider = "espeak"

    def __init__(
        self,
        binary: str = "espeak-ng",
        timeout_seconds: float = 30.0,
        *,
        threads: int | None = None,
        nice: int = 0,
    ) -> None:
        """``threads``: processes looked after at once (size it to the engine pool's
        concurrency; default two per CPU); ``nice``: how much lower their CPU priority is."""
        found = shutil.which(binary)
        if found is None:
            raise RuntimeError(f"{binary} is not installed (apt-get install espeak-ng)")
        self.binary = found
        self.timeout_seconds = timeout_seconds
        self._executor = ThreadPoolExecutor(
            max_workers=threads or 2 * (os.cpu_count() or 1),
            thread_name_prefix="espeak",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
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
        output = await self._run(self._args(request), request.text.encode("utf-8"))
        try:
            return normalize_wav(output)
        except InvalidAudio as exc:
            raise SynthesisFailed(f"espeak-ng produced no usable audio: {exc}") from exc

    def sample_rate_for(self, voice: str) -> int:
        return ESPEAK_SAMPLE_RATE

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        """Raw 16-bit mono PCM as espeak-ng writes it (it synthesizes as it goes)."""
        await self.validate_voice(request.voice)
        args, text = self._args(request), request.text.encode("utf-8")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        process = _Process()

        def produce() -> None:
            item: Exception | None = None
            try:
                proc = process.start([self.binary, *args], stderr=subprocess.DEVNULL)
                try:
                    assert proc.stdin is not None
                    proc.stdin.write(text)
                    proc.stdin.close()
                    stdout = cast(io.BufferedReader, proc.stdout)
                    header = stdout.read(_STREAM_HEADER_BYTES)  # the WAV header, not PCM
                    while len(header) == _STREAM_HEADER_BYTES and (chunk := stdout.read1()):
                        loop.call_soon_threadsafe(queue.put_nowait, chunk)
                    if proc.wait() != 0 and not process.abandoned:
                        item = SynthesisFailed(f"espeak-ng failed with exit code {proc.returncode}")
                finally:
                    _reap(proc)
            except Exception as exc:
                item = exc
            loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = loop.run_in_executor(self._executor, produce)
        deadline = loop.time() + self.timeout_seconds
        try:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await queue.get()
                except TimeoutError as exc:
                    raise SynthesisFailed("espeak-ng timed out") from exc
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            process.abandon()  # a no-op once it ended; else the consumer stopped early
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)

    async def _run(self, args: list[str], stdin: bytes) -> bytes:
        process = _Process()

        def run() -> tuple[int, bytes, bytes]:
            # No input, no pipe: espeak-ng may exit (--version) before an empty write.
            proc = process.start([self.binary, *args], stdin_wanted=bool(stdin))
            try:
                out, err = proc.communicate(stdin or None, timeout=self.timeout_seconds)
            except subprocess.TimeoutExpired as exc:
                raise SynthesisFailed("espeak-ng timed out") from exc
            finally:
                _reap(proc)
            return proc.returncode, out, err

        code, out, err = await self._in_worker(run, process)
        if code != 0:
            message = err.decode(errors="replace").strip()[:200]
            raise SynthesisFailed(f"espeak-ng failed: {message or code}")
        return out

    async def _in_worker(self, work: Callable[[], T], process: _Process) -> T:
        """``work()`` on the engine's threads. Cancelled (the engine pool's deadline, a
        caller gone), it kills the process and still waits for the thread, so no synthesis
        outlives the slot it was given."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            process.abandon()
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
            raise

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class _Process:
    """One espeak-ng process: started by a worker thread, which also reaps it; abandoned
    (killed) from the event loop when nobody wants its output any more."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self.abandoned = False

    def start(
        self, argv: list[str], *, stdin_wanted: bool = True, stderr: int = subprocess.PIPE
    ) -> subprocess.Popen[bytes]:
        with self._lock:
            if self.abandoned:
                raise SynthesisFailed("espeak-ng synthesis abandoned")
            try:
                self._proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.PIPE if stdin_wanted else subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                )
            except OSError as exc:
                raise SynthesisFailed(f"could not start espeak-ng: {exc.strerror}") from exc
            return self._proc

    def abandon(self) -> None:
        with self._lock:
            self.abandoned = True
            if self._proc is not None and self._proc.poll() is None:
                with contextlib.suppress(OSError):
                    self._proc.kill()


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()

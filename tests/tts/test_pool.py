"""Engine pools: a concurrency limit, a bounded queue, a deadline to start and one to finish.

Unit tests drive a pool around a FakeEngine held on demand; the API tests run the same
pool as build_services wires it, through the real routes.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from support import Api, assert_envelope

from audiocache.config import Settings
from audiocache.errors import EngineBusy, SynthesisTimeout
from audiocache.services import Services, build_services, default_engines
from audiocache.tts.base import Engine, SynthesisRequest
from audiocache.tts.espeak import EspeakEngine
from audiocache.tts.fake import FakeEngine, StreamingFakeEngine
from audiocache.tts.pool import Budget, EnginePool, StreamingEnginePool, pooled

REQUEST = SynthesisRequest("Hello there", "alpha")


def held_engine(cls: type[FakeEngine] = FakeEngine) -> FakeEngine:
    engine = cls()
    engine.gate = asyncio.Event()
    return engine


def pool_of(engine: Engine, concurrency=1, queue=1, start=5.0, run=5.0) -> EnginePool:
    return pooled(engine, Budget(concurrency, queue, start, run))


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


def say(pool: EnginePool, text: str = "Hello there") -> asyncio.Task[bytes]:
    return asyncio.create_task(pool.synthesize(SynthesisRequest(text, "alpha")))


async def test_no_more_than_the_limit_run_and_the_rest_wait_their_turn() -> None:
    engine = held_engine()
    pool = pool_of(engine, concurrency=2, queue=5)
    tasks = [say(pool, f"phrase {n}") for n in range(6)]
    await until(lambda: pool.waiting == 4)
    assert engine.active == 2 and pool.running == 2
    engine.gate.set()
    results = await asyncio.gather(*tasks)
    assert len(set(results)) == 6 and engine.max_active == 2
    assert pool.running == 0 and pool.waiting == 0
    # first come, first served
    assert [r.text for r in engine.calls] == [f"phrase {n}" for n in range(6)]


async def test_a_full_queue_is_refused_at_once_with_retry_after() -> None:
    engine = held_engine()
    pool = pool_of(engine, concurrency=1, queue=2)
    tasks = [say(pool) for _ in range(3)]
    await until(lambda: pool.waiting == 2)
    started = time.monotonic()
    with pytest.raises(EngineBusy) as refused:
        await pool.synthesize(REQUEST)
    assert time.monotonic() - started < 0.5
    assert refused.value.status == 503 and refused.value.error_code == "ENGINE_BUSY"
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert len(engine.calls) == 1  # the refused call never reached the engine
    engine.gate.set()
    await asyncio.gather(*tasks)
    assert pool.refused == 1


async def test_a_call_that_cannot_start_within_the_deadline_is_refused() -> None:
    engine = held_engine()
    pool = pool_of(engine, concurrency=1, queue=5, start=0.2)
    running = say(pool)
    await until(lambda: engine.active == 1)
    started = time.monotonic()
    with pytest.raises(EngineBusy, match=r"within 0\.2 s"):
        await pool.synthesize(REQUEST)
    assert 0.15 < time.monotonic() - started < 2
    assert pool.waiting == 0
    engine.gate.set()
    await running
    await pool.synthesize(REQUEST)  # the slot works as before


async def test_a_synthesis_past_its_time_limit_is_abandoned_and_frees_its_slot() -> None:
    engine = held_engine()  # never released: would run forever
    pool = pool_of(engine, concurrency=1, queue=1, run=0.2)
    with pytest.raises(SynthesisTimeout) as timed_out:
        await pool.synthesize(REQUEST)
    assert timed_out.value.status == 504 and timed_out.value.error_code == "SYNTHESIS_TIMEOUT"
    assert engine.active == 0 and pool.running == 0  # the work itself was cancelled
    engine.gate.set()
    await pool.synthesize(REQUEST)


async def test_an_engines_own_timeout_is_not_taken_for_the_pools() -> None:
    class Impatient(FakeEngine):
        async def synthesize(self, request: SynthesisRequest) -> bytes:
            raise TimeoutError("the engine's own")

    with pytest.raises(TimeoutError, match="the engine's own"):
        await pool_of(Impatient()).synthesize(REQUEST)


async def test_cancelling_a_running_or_waiting_call_frees_its_place() -> None:
    engine = held_engine()
    pool = pool_of(engine, concurrency=1, queue=2)
    running, waiting = say(pool, "running"), say(pool, "waiting")
    await until(lambda: pool.waiting == 1)
    waiting.cancel()
    await until(lambda: pool.waiting == 0)
    running.cancel()
    await until(lambda: pool.running == 0)
    assert engine.active == 0
    engine.gate.set()
    await pool.synthesize(REQUEST)
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_stream_holds_its_slot_until_it_ends_or_is_closed() -> None:
    engine = StreamingFakeEngine(chunks=4, chunk_delay=0)
    pool = pool_of(engine, concurrency=1, queue=0, start=0.1)
    assert isinstance(pool, StreamingEnginePool) and pool.sample_rate_for("alpha") == 16000
    stream = pool.stream(REQUEST)
    first = await anext(stream)
    assert first and pool.running == 1
    with pytest.raises(EngineBusy):  # the consumer is between chunks: the slot stays taken
        await pool.synthesize(REQUEST)
    await stream.aclose()
    assert pool.running == 0
    chunks = [chunk async for chunk in pool.stream(REQUEST)]  # to the end
    assert b"".join(chunks).startswith(first) and pool.running == 0


async def test_a_stream_past_its_time_limit_is_cut() -> None:
    engine = StreamingFakeEngine(chunks=4, chunk_delay=10)
    pool = pool_of(engine, run=0.2)
    with pytest.raises(SynthesisTimeout):
        async for _chunk in pool.stream(REQUEST):
            pass
    assert engine.active == 0 and pool.running == 0


def test_pooled_keeps_the_engine_interface() -> None:
    plain = pool_of(FakeEngine())
    assert isinstance(plain, Engine) and not hasattr(plain, "stream")
    assert plain.provider == "fake" and plain.model_for({}, "alpha") == "fake-1"
    streaming = pool_of(StreamingFakeEngine())
    assert callable(streaming.stream)
    assert pooled(streaming, Budget(9, 9, 1, 1)) is streaming  # never pooled twice


def test_every_engine_is_pooled_with_the_budget_of_the_settings(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        piper_concurrency=1,
        espeak_concurrency=3,
        cloud_concurrency=5,
        engine_queue_per_slot=2,
        engine_start_timeout_seconds=4,
        engine_synthesis_timeout_seconds=7,
        openai_api_key="sk-test",
    )
    services = build_services(settings, engines=[*default_engines(settings), FakeEngine()])
    budgets = {
        p: services.engines.get(p).budget
        for p in services.engines.providers()  # type: ignore[union-attr]
    }
    assert budgets["espeak"] == Budget(3, 6, 4, 7)
    assert budgets["openai"] == Budget(5, 10, 4, 7)
    assert budgets["fake"] == Budget(5, 10, 4, 7)
    if "piper" in budgets:
        assert budgets["piper"] == Budget(1, 2, 4, 7)
        assert isinstance(services.engines.get("piper"), StreamingEnginePool)
    assert isinstance(services.engines.get("espeak"), StreamingEnginePool)


def test_per_core_defaults(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    settings = Settings(data_dir=tmp_path)
    assert settings.engine_concurrency("piper") == 6
    assert settings.engine_concurrency("espeak") == 12
    assert settings.engine_concurrency("openai") == settings.cloud_concurrency


async def test_cancelled_espeak_leaves_no_process_behind() -> None:
    import psutil
    from support import require_tool

    require_tool("espeak-ng")
    pool = pool_of(EspeakEngine(), run=0.05)
    long = " ".join(f"word{n}" for n in range(3000))
    with pytest.raises(SynthesisTimeout):
        await pool.synthesize(SynthesisRequest(long, "en-us"))
    assert not [p for p in psutil.Process().children() if "espeak" in p.name()]


# -- through the real API ---------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The fake engine gets one slot and one place in the queue."""
    return settings.model_copy(
        update={
            "cloud_concurrency": 1,
            "engine_queue_per_slot": 1,
            "engine_start_timeout_seconds": 5.0,
            "engine_synthesis_timeout_seconds": 5.0,
        }
    )


async def test_a_miss_finding_the_pool_full_is_503_engine_busy(
    api: Api, fake_engine: FakeEngine
) -> None:
    await api.create_agent("bot")
    fake_engine.gate = asyncio.Event()
    held = [asyncio.create_task(api.speak("bot", f"held {n}")) for n in range(2)]
    await until(lambda: len(fake_engine.calls) == 1)
    await asyncio.sleep(0.05)  # the second is queued
    refused = await api.speak("bot", "one too many")
    body = assert_envelope(refused, 503, "ENGINE_BUSY")
    assert int(refused.headers["retry-after"]) >= 1
    assert "fake engine is at capacity" in body["error_message"]
    fake_engine.gate.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]
    stored = [e["transcript"] for e in (await api.entries("bot"))["entries"]]
    assert sorted(stored) == ["held 0", "held 1"]  # nothing of the refused one


async def test_a_synthesis_past_its_limit_is_504_and_stores_nothing(
    api: Api, fake_engine: FakeEngine, services: Services
) -> None:
    await api.create_agent("bot")
    services.engines.get("fake").budget = Budget(1, 1, 5.0, 0.2)  # type: ignore[union-attr]
    fake_engine.gate = asyncio.Event()
    r = await api.speak("bot", "takes forever")
    assert_envelope(r, 504, "SYNTHESIS_TIMEOUT")
    assert (await api.entries("bot"))["totalCount"] == 0
    assert fake_engine.active == 0


@pytest.mark.parametrize("fake_engine", [StreamingFakeEngine(chunks=3, chunk_delay=0)])
async def test_a_streamed_miss_finding_the_pool_full_is_503_not_a_cut_stream(
    api: Api, fake_engine: StreamingFakeEngine
) -> None:
    fake_engine.calls.clear()  # one instance serves the run of every backend
    await api.create_agent("bot")
    fake_engine.gate = asyncio.Event()
    held = [asyncio.create_task(api.speak("bot", f"held {n}", stream=True)) for n in range(2)]
    await until(lambda: len(fake_engine.calls) == 1)
    await asyncio.sleep(0.05)
    refused = await api.speak("bot", "one too many", stream=True)
    assert_envelope(refused, 503, "ENGINE_BUSY")
    fake_engine.gate.set()
    assert [r.status_code for r in await asyncio.gather(*held)] == [200, 200]

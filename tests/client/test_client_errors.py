"""The client's exception tree and retries, against a live server answering for real."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tracemalloc
import wave
from collections.abc import Iterator

import pytest
from live_client import Live, new_agent, prepare, served
from support import ThreadedServer, sine_wav

from audiocache.api.uploads import UploadGate
from audiocache.client import (
    AudioCacheError,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    Phrase,
    ServiceUnavailable,
    Unauthorized,
)
from audiocache.config import Settings


def test_each_status_family_has_its_class(live: Live, ac: Client) -> None:
    agent = new_agent(ac)
    entry = ac.tts(agent, Phrase("Hello there")).entry_id
    assert entry is not None

    with pytest.raises(NotFound) as missing:
        ac.download(agent, 424242)
    assert (missing.value.status, missing.value.error_code) == (404, "NOT_FOUND")
    assert missing.value.error_id and missing.value.error_id in str(missing.value)

    with live.client(key="ack_not-a-key") as stranger, pytest.raises(Unauthorized) as denied:
        stranger.list_entries(agent)
    assert (denied.value.status, denied.value.error_code) == (401, "UNAUTHORIZED")

    with live.client(key=live.read_key) as reader:
        assert reader.list_entries(agent).total_count == 1
        with pytest.raises(Forbidden) as forbidden:
            reader.delete_entry(agent, entry)
        assert forbidden.value.status == 403 and forbidden.value.error_code == "FORBIDDEN"

    with live.client(key=live.other_key, account="globex") as other, pytest.raises(NotFound):
        other.list_entries(agent)  # another account's agent does not exist for this key

    with pytest.raises(InvalidRequest) as bad_sort:
        ac.list_entries(agent, sort="loudness:desc")
    assert (bad_sort.value.status, bad_sort.value.error_code) == (400, "INVALID_SORT")
    with pytest.raises(InvalidRequest) as bad_audio:
        ac.replace_file(agent, entry, b"not a wav")
    assert bad_audio.value.error_code == "INVALID_AUDIO"
    with pytest.raises(InvalidRequest) as bad_id:
        ac.download(agent, "abc")
    assert bad_id.value.error_code == "INVALID_ID"

    with pytest.raises(Conflict) as taken:
        ac.create_agent("Again", agent_id=agent)
    assert taken.value.status == 409 and taken.value.error_code == "CONFLICT"


@contextlib.contextmanager
def uploads_busy(live: Live) -> Iterator[contextlib.ExitStack]:
    """Every upload slot of the server taken, as by uploads in progress: the server then
    answers uploads 503 UPLOADS_BUSY with Retry-After until ``close()`` frees the slot."""
    gate = UploadGate(live.settings.max_concurrent_uploads)
    live.app.state.upload_gate = gate
    with contextlib.ExitStack() as held:
        for _ in range(gate.limit):
            held.enter_context(gate.slot())
        yield held


def test_a_put_is_retried_on_503_with_retry_after(live: Live) -> None:
    with live.client() as setup:
        agent = new_agent(setup)
        entry = setup.tts(agent, Phrase("Hello there")).entry_id
        assert entry is not None
    retries: list[tuple[int, str, float]] = []
    with uploads_busy(live) as held:

        def on_retry(attempt: int, error: AudioCacheError, delay: float) -> None:
            retries.append((attempt, error.error_code, delay))
            held.close()  # the upload in progress is done: the next attempt finds a slot

        with live.client(on_retry=on_retry) as ac:
            audio = sine_wav(0.25)
            ac.replace_details(agent, entry, audio, "Busy hello", {})
            assert ac.download(agent, entry) == audio
    assert retries == [(1, "UPLOADS_BUSY", 2.0)]


def test_retries_are_bounded_and_only_for_idempotent_calls(live: Live) -> None:
    with live.client() as setup:
        agent = new_agent(setup)
        entry = setup.tts(agent, Phrase("Hello there")).entry_id
        assert entry is not None
    retries: list[int] = []
    with uploads_busy(live):
        # POST is not idempotent: one attempt, the 503 and its Retry-After handed back.
        with live.client(on_retry=lambda n, e, d: retries.append(n)) as ac:
            with pytest.raises(ServiceUnavailable) as busy:
                ac.store(agent, Phrase("New phrase"), sine_wav(0.1))
            assert busy.value.error_code == "UPLOADS_BUSY" and busy.value.retry_after == 2.0
            # PATCH neither.
            with pytest.raises(ServiceUnavailable):
                ac.replace_file(agent, entry, sine_wav(0.1))
        # A PUT whose Retry-After is past the time budget is not waited for.
        quick = live.client(max_retry_seconds=1.0, on_retry=lambda n, e, d: retries.append(n))
        with quick as ac, pytest.raises(ServiceUnavailable):
            ac.replace_details(agent, entry, sine_wav(0.1), "x", {})
        # Nor past the number of attempts.
        with live.client(max_attempts=1) as ac, pytest.raises(ServiceUnavailable):
            ac.replace_details(agent, entry, sine_wav(0.1), "x", {})
    assert retries == []


async def test_a_get_is_retried_when_the_server_is_not_up_yet(live_settings: Settings) -> None:
    keys = await prepare(live_settings)
    server = ThreadedServer(served(live_settings))
    attempts: list[str] = []

    def on_retry(attempt: int, error: AudioCacheError, delay: float) -> None:
        attempts.append("connect" if isinstance(error, ConnectionFailed) else error.error_code)
        if attempt == 2:
            server.__enter__()  # the server comes up after the second failed connection

    try:
        with Client(server.url, keys[0], account="acme", on_retry=on_retry) as ac:
            assert ac.list_agents() == []
    finally:
        server.__exit__()
    assert attempts == ["connect", "connect"]
    down_client = Client(server.url, keys[0], max_attempts=3, backoff_seconds=0)
    with down_client as ac, pytest.raises(ConnectionFailed) as down:
        ac.list_agents(account="acme")
    assert down.value.status == 0 and "cannot connect" in down.value.message


def long_wav(seconds: float, rate: int = 16000) -> bytes:
    frames = bytes(range(256)) * (int(seconds * rate) * 2 // 256)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out.getvalue()


def test_a_large_download_streams_in_chunks(live: Live, ac: Client) -> None:
    agent = new_agent(ac)
    entry = ac.tts(agent, Phrase("Hello there")).entry_id
    assert entry is not None
    audio = long_wav(180)  # 5.8 MB, under the 6 MiB upload limit
    ac.replace_file(agent, entry, audio)
    sizes, digest = [], hashlib.sha256()
    tracemalloc.start()
    try:
        for chunk in ac.iter_download(agent, entry, chunk_size=64 * 1024):
            sizes.append(len(chunk))
            digest.update(chunk)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest.hexdigest() == hashlib.sha256(audio).hexdigest() and sum(sizes) == len(audio)
    assert len(sizes) >= len(audio) // (64 * 1024) and max(sizes) <= 64 * 1024
    # Never the whole body in memory (client and server together, same process).
    assert peak < len(audio) // 2, f"peak {peak} bytes for a {len(audio)}-byte body"

"""Regenerate, pin and warm: audiocache's curation actions beside the contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import Api, assert_envelope, sine_wav

from audiocache.cache.warmup import parse_phrases, warm_up


async def test_regenerate_replaces_the_audio_in_place(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Thanks for holding")
    upload = sine_wav()
    await api.client.patch(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        content=upload,
        headers={**api.headers, "X-Filename": "studio.wav"},
    )
    calls = len(fake_engine.calls)
    r = await api.client.post(
        f"/v1/agents/bot/audio-cache/{entry_id}/regenerate", headers=api.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == entry_id and body["regenerated"] is True
    assert body["audioFilename"] is None and body["transcript"] == "Thanks for holding"
    assert len(fake_engine.calls) == calls + 1
    audio = await api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers)
    assert audio.content != upload
    hit = await api.speak("bot", "Thanks for holding")
    assert hit.headers["x-audio-cache"] == "hit" and hit.content == audio.content


async def test_regenerate_moves_an_entry_to_the_new_model(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Model change")
    fake_engine.model = "fake-2"
    assert (await api.speak("bot", "Model change")).headers["x-audio-cache"] == "miss"
    await api.create_agent("bot2")
    entry2 = await api.seed_entry("bot2", "Model change")
    fake_engine.model = "fake-3"
    r = await api.client.post(
        f"/v1/agents/bot2/audio-cache/{entry2}/regenerate", headers=api.headers
    )
    assert r.status_code == 200
    assert (await api.speak("bot2", "Model change")).headers["x-audio-cache"] == "hit"
    assert entry_id  # the first agent's old entry is untouched


async def test_regenerate_errors(api: Api, fake_engine) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Hello")
    base = "/v1/agents/bot/audio-cache"
    assert_envelope(await api.client.post(f"{base}/x/regenerate", headers=api.headers), 400)
    assert_envelope(await api.client.post(f"{base}/999/regenerate", headers=api.headers), 404)
    fake_engine.fail_next = 1
    r = await api.client.post(f"{base}/{entry_id}/regenerate", headers=api.headers)
    assert_envelope(r, 502, "SYNTHESIS_FAILED")
    read_only = await api.new_key(["audio_cache:read"])
    r = await api.client.post(f"{base}/{entry_id}/regenerate", headers={"X-API-KEY": read_only})
    assert_envelope(r, 403)


async def test_pin_and_unpin(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Pin me")
    url = f"/v1/agents/bot/audio-cache/{entry_id}/pin"
    assert (await api.client.put(url, headers=api.headers)).json()["pinned"] is True
    listed = await api.entries("bot", filter="pinned:eq:true")
    assert [e["id"] for e in listed["entries"]] == [entry_id]
    assert (await api.client.delete(url, headers=api.headers)).json()["pinned"] is False
    assert (await api.entries("bot", filter="pinned:eq:true"))["totalCount"] == 0


async def test_warm_api_stores_and_pins_despite_admission(api: Api, fake_engine) -> None:
    await api.create_agent("bot", admission="never")
    body = {"phrases": [{"text": "Hello"}, {"text": "Goodbye", "voice": "fake:beta"}]}
    r = await api.client.post("/v1/agents/bot/audio-cache/warm", json=body, headers=api.headers)
    assert r.status_code == 200, r.text
    assert r.json()["synthesized"] == 2
    assert all(e["pinned"] for e in r.json()["entries"])
    again = await api.client.post("/v1/agents/bot/audio-cache/warm", json=body, headers=api.headers)
    assert again.json()["synthesized"] == 0 and len(fake_engine.calls) == 2
    assert (await api.speak("bot", "Goodbye", voice="fake:beta")).headers["x-audio-cache"] == "hit"
    too_many = {"phrases": [{"text": f"p{n}"} for n in range(101)]}
    r = await api.client.post("/v1/agents/bot/audio-cache/warm", json=too_many, headers=api.headers)
    assert_envelope(r, 400)


def test_parse_phrases() -> None:
    lines = [
        "Hello there",
        "",
        "# a comment",
        '{"text": "Hola", "voice": "es", "language": "es-ES", "config": {"speed": 1.1}}',
        '{"text": 3}',
        "{not json",
    ]
    phrases, problems = parse_phrases(lines)
    assert [(p.line, p.text, p.voice) for p in phrases] == [
        (1, "Hello there", None),
        (4, "Hola", "es"),
    ]
    assert phrases[1].config == {"speed": 1.1} and phrases[1].language == "es-ES"
    assert [line for line, _ in problems] == [5, 6]


async def test_warm_up_is_bounded_and_resumable(services, fake_engine) -> None:
    await services.start()
    try:
        agent = await services.agents.create("acme", name="a", greeting="g", language_code="en")
        agent = await services.agents.set_policy(agent, "never", None, None)
        fake_engine.delay_seconds = 0.05
        running = peak = 0
        original = fake_engine.synthesize

        async def counting(request):  # type: ignore[no-untyped-def]
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                return await original(request)
            finally:
                running -= 1

        fake_engine.synthesize = counting  # type: ignore[method-assign]
        phrases, _ = parse_phrases([f"Phrase {n}" for n in range(12)] + ["\x00 bad"])
        phrases_voiced = [type(p)(p.line, p.text, "fake:alpha") for p in phrases]
        done: list[bool | None] = []
        report = await warm_up(
            services.cache,
            agent,
            phrases_voiced[:6],
            concurrency=3,
            on_done=lambda _p, c: done.append(c),
        )
        assert (report.synthesized, report.already_cached, report.failed) == (6, 0, [])
        assert peak == 3 and done.count(True) == 6
        # Interrupted after six: running it again over everything finishes the rest.
        report = await warm_up(services.cache, agent, phrases_voiced, concurrency=3)
        assert (report.synthesized, report.already_cached) == (6, 6)
        assert [line for line, _ in report.failed] == [13]
    finally:
        await services.stop()


@pytest.mark.slow
def test_warm_cli_with_espeak(tmp_path: Path) -> None:
    data = tmp_path / "data"
    cli = [sys.executable, "-m", "audiocache"]
    subprocess.run(
        [
            *cli,
            "agents",
            "create",
            "--account",
            "acme",
            "--name",
            "Desk",
            "--agent-id",
            "desk",
            "--voice",
            "en-us",
            "--data-dir",
            str(data),
        ],
        check=True,
        capture_output=True,
    )
    phrases = tmp_path / "phrases.txt"
    phrases.write_text(
        "Thanks for calling\nPlease hold\n" + '{"text": "Goodbye", "voice": "en-gb"}\n'
    )
    run = subprocess.run(
        [*cli, "warm", str(phrases), "--agent", "desk", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == {
        "synthesized": 3,
        "alreadyCached": 0,
        "failed": 0,
    }
    again = subprocess.run(
        [*cli, "warm", str(phrases), "--agent", "desk", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(again.stdout.splitlines()[-1])["alreadyCached"] == 3
    check = subprocess.run(
        [*cli, "check", "--json", "--data-dir", str(data)], capture_output=True, text=True
    )
    report = json.loads(check.stdout)
    assert report["entries"] == 3 and report["rowsWithoutBlob"] == [] and report["blobs"] == 3

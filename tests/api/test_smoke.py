from support import Api, assert_envelope, sine_wav


async def test_runtime_path_miss_then_stored_then_hit(api: Api, fake_engine) -> None:
    await api.create_agent("bot", admission="default")
    first = await api.speak("bot", "Thanks for calling")
    assert first.status_code == 200 and first.headers["x-audio-cache"] == "miss"
    assert "x-audio-cache-entry-id" not in first.headers
    second = await api.speak("bot", "Thanks for calling")
    assert second.headers["x-audio-cache"] == "miss"
    entry_id = second.headers["x-audio-cache-entry-id"]
    third = await api.speak("bot", "Thanks for calling")
    assert third.headers["x-audio-cache"] == "hit"
    assert third.headers["x-audio-cache-entry-id"] == entry_id
    assert third.content == second.content
    assert len(fake_engine.calls) == 2
    listed = await api.entries("bot")
    assert listed["totalCount"] == 1
    assert listed["entries"][0]["hitCount"] == 1


async def test_upload_then_download(api: Api) -> None:
    await api.create_agent("bot")
    entry_id = await api.seed_entry("bot", "Hello there")
    wav = sine_wav()
    r = await api.client.patch(
        f"/v1/agents/bot/audio-cache/{entry_id}/file",
        content=wav,
        headers={**api.headers, "Content-Type": "audio/wav"},
    )
    assert r.status_code == 204
    r = await api.client.get(f"/v1/agents/bot/audio-cache/{entry_id}/file", headers=api.headers)
    assert r.status_code == 200 and r.content == wav


async def test_unknown_route_is_envelope(api: Api) -> None:
    assert_envelope(await api.client.get("/nope"), 404, "NOT_FOUND")

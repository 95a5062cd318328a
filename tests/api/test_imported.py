"""A hand-made take (PATCH …/file, PUT …/details) is marked imported, and the filter finds it."""

from __future__ import annotations

from audio_cache_helpers import AGENT, replace_details, replace_file
from support import Api, sine_wav


async def imported_ids(api: Api, value: str) -> set[str]:
    listed = await api.entries(AGENT, filter=f"imported:eq:{value}", limit=200)
    assert listed["totalCount"] == len(listed["entries"])
    return {e["id"] for e in listed["entries"]}


async def test_replace_file_marks_the_entry_imported(api: Api, agent: str) -> None:
    uploaded = await api.seed_entry(agent, "Thanks for calling")
    synthesized = await api.seed_entry(agent, "Goodbye")
    assert await imported_ids(api, "true") == set()

    assert (await replace_file(api, uploaded, sine_wav(freq=330.0))).status_code == 204

    assert await imported_ids(api, "true") == {uploaded}
    assert await imported_ids(api, "false") == {synthesized}


async def test_replace_details_marks_the_entry_imported(api: Api, agent: str) -> None:
    uploaded = await api.seed_entry(agent, "Thanks for calling")
    await api.seed_entry(agent, "Goodbye")

    r = await replace_details(api, uploaded, text="A studio take", wav=sine_wav(freq=550.0))
    assert r.status_code == 204, r.text

    assert await imported_ids(api, "true") == {uploaded}


async def test_regenerate_clears_imported(api: Api, agent: str) -> None:
    entry_id = await api.seed_entry(agent, "Thanks for calling")
    assert (await replace_file(api, entry_id, sine_wav(freq=330.0))).status_code == 204
    r = await api.client.post(
        f"/v1/agents/{AGENT}/audio-cache/{entry_id}/regenerate", headers=api.headers
    )
    assert r.status_code == 200, r.text
    assert await imported_ids(api, "true") == set()

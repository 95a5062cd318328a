"""Export, import and takes uploads through the API, over both backends."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

from support import Api, assert_envelope

AGENT = "source"


def read_archive(data: bytes) -> tuple[dict, dict[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    return json.loads(files.pop("manifest.json")), files


async def test_export_streams_every_entry_with_its_audio_and_hashes(api: Api) -> None:
    await api.create_agent(AGENT)
    ids = [await api.seed_entry(AGENT, text) for text in ("Hello there", "Goodbye now")]
    r = await api.client.put(f"/v1/agents/{AGENT}/audio-cache/{ids[0]}/pin", headers=api.headers)
    assert r.status_code == 200
    r = await api.client.get(f"/v1/agents/{AGENT}/audio-cache/export", headers=api.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert 'filename="source.audiocache.tar"' in r.headers["content-disposition"]
    manifest, files = read_archive(r.content)
    assert (manifest["format"], manifest["version"]) == ("audiocache-export", 1)
    assert manifest["agent"]["agentId"] == AGENT
    by_text = {e["transcript"]: e for e in manifest["entries"]}
    assert set(by_text) == {"Hello there", "Goodbye now"}
    assert by_text["Hello there"]["flags"]["pinned"] is True
    assert by_text["Goodbye now"]["flags"]["pinned"] is False
    for record in manifest["entries"]:
        audio = files[record["file"]]
        assert hashlib.sha256(audio).hexdigest() == record["sha256"]
        download = await api.client.get(
            f"/v1/agents/{AGENT}/audio-cache/{record['id']}/file", headers=api.headers
        )
        assert download.content == audio
        assert record["provider"] == "fake" and record["voice"] == "alpha"


async def test_export_needs_read_and_an_agent_of_the_account(api: Api) -> None:
    await api.create_agent(AGENT)
    url = f"/v1/agents/{AGENT}/audio-cache/export"
    assert_envelope(await api.client.get(url), 401, "UNAUTHORIZED")
    no_read = await api.new_key(["agents:read"])
    assert_envelope(await api.client.get(url, headers={"X-API-KEY": no_read}), 403, "FORBIDDEN")
    other = await api.new_key(["audio_cache:read"], account="other")
    assert_envelope(await api.client.get(url, headers={"X-API-KEY": other}), 404, "NOT_FOUND")

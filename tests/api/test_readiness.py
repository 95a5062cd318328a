"""GET /readyz on each backend pair: 200 naming both parts when they answer; on a folder
store whose folder went away (an unmounted volume) or was replaced, 503 NOT_READY naming the
blob store, and 200 again once it is back. (A stopped radosgw and a stopped PostgreSQL are
in test_outages.py, on private servers.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import Api, assert_envelope


async def test_ready_when_both_parts_answer(api: Api) -> None:
    r = await api.client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok", "database": "ok", "blobs": "ok"}


@pytest.fixture
def backend() -> str:
    return "sqlite+fs"


def _blob_root(api: Api) -> Path:
    root: Path = api.services.blobs.root
    assert root.is_dir()
    return root


@pytest.mark.parametrize("fault", ["folder gone", "folder replaced by a file"])
async def test_not_ready_while_the_blob_folder_is_missing(api: Api, fault: str) -> None:
    await api.seed_entry(await api.create_agent("bot"), "Stored before the fault")
    root = _blob_root(api)
    aside = root.with_name(root.name + ".aside")
    root.rename(aside)
    if fault == "folder replaced by a file":
        root.write_bytes(b"not a folder")
    try:
        body = assert_envelope(await api.client.get("/readyz"), 503, "NOT_READY")
        assert "blob store" in body["error_message"], body
        assert "database" not in body["error_message"], body
    finally:
        if root.is_file():
            root.unlink()
        elif root.exists():
            shutil.rmtree(root)
        aside.rename(root)
    r = await api.client.get("/readyz")
    assert r.status_code == 200, r.text

"""The importer itself: an interrupted import, run again, finishes what is left; every
entry is stored whole or not at all."""

from __future__ import annotations

import io

import pytest
from support import Api

from audiocache.cache.transfer.export import export_agent
from audiocache.cache.transfer.importer import Limits, import_archive
from audiocache.storage import gc

LIMITS = Limits(max_file_bytes=16 * 1024 * 1024, max_manifest_bytes=1024 * 1024)


class Interrupted(Exception):
    pass


async def test_an_interrupted_import_continues_where_it_stopped(api: Api) -> None:
    await api.create_agent("from")
    await api.create_agent("to")
    for text in ("One", "Two", "Three", "Four", "Five"):
        await api.seed_entry("from", text)
    services = api.services
    source = await services.agents.owned("acme", "from")
    target = await services.agents.owned("acme", "to")
    archive = b"".join([c async for c in export_agent(services.entries, services.blobs, source)])

    def stop_after_two(phase: str, done: int, _total: int) -> None:
        if phase == "importing" and done == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        await import_archive(services.cache, target, io.BytesIO(archive), LIMITS, stop_after_two)
    assert (await api.entries("to"))["totalCount"] == 2
    assert (await gc.check(services.db, services.blobs)).healthy  # nothing half-written

    phases: list[str] = []
    resumed = await import_archive(
        services.cache,
        target,
        io.BytesIO(archive),
        LIMITS,
        lambda phase, _done, _total: phases.append(phase),
    )
    assert (resumed.created, resumed.unchanged, resumed.replaced) == (3, 2, 0)
    assert phases.count("verifying") == 5 and phases.count("importing") == 5
    assert (await api.entries("to"))["totalCount"] == 5


async def test_entries_the_target_refuses_fail_alone(api: Api) -> None:
    """A transcript over this server's limit is a failure with its reason; the rest go in."""
    await api.create_agent("from")
    await api.create_agent("to")
    await api.seed_entry("from", "Short")
    await api.seed_entry("from", "A rather longer phrase")
    services = api.services
    source = await services.agents.owned("acme", "from")
    target = await services.agents.owned("acme", "to")
    archive = b"".join([c async for c in export_agent(services.entries, services.blobs, source)])
    services.cache.max_text_chars = 10
    report = await import_archive(services.cache, target, io.BytesIO(archive), LIMITS)
    assert report.created == 1
    [failure] = report.failures
    assert failure.transcript == "A rather longer phrase" and "limit is 10" in failure.reason

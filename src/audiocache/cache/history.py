"""An entry's earlier takes: list them, and bring one back as the current audio.

Replace, replace-with-settings and regenerate keep the take they replace
(``storage/takes_repo.py``, bounded per entry by ``take_history_limit``). A restore is one
more audio write through the blob writer (``cache/blob_writer.py``): the take's blob is put
again (a sweep may have collected it once nothing else referred to it), the entry row takes
the take's audio and details, the take leaves the history and the audio it replaces joins
it (reason ``restore``), all in the entry's write transaction. A kill at any moment leaves
either the old state or the new one; the blob an interrupted restore put is collected by gc.
"""

from __future__ import annotations

from audiocache.audio.wav import parse_wav
from audiocache.cache.curation import Curation
from audiocache.errors import StorageUnavailable, UnknownTake
from audiocache.models import Entry, Take
from audiocache.storage.takes_repo import TakeChange, TakeRepository, restored_values

_AUDIO_FIELDS = ("blob_sha256", "size_bytes", "duration")  # the writer sets these from the blob


class TakeHistory:
    def __init__(self, curation: Curation, takes: TakeRepository) -> None:
        self.curation = curation
        self.takes = takes

    async def of_entry(self, entry: Entry) -> list[Take]:
        """The entry's earlier takes, newest first."""
        return await self.takes.of_entry(entry.agent_id, entry.id)

    async def get(self, entry: Entry, take_id: int) -> Take:
        take = await self.takes.get(entry.agent_id, entry.id, take_id)
        if take is None:
            raise UnknownTake(f"Entry {entry.id} has no take {take_id}")
        return take

    async def restore(self, entry: Entry, take_id: int) -> Entry:
        """Make take ``take_id`` the entry's audio again; the current audio becomes a take.

        ``UnknownTake`` if the entry has no such take (also when a concurrent restore or
        trim took it between the read and the write); ``Conflict`` if another entry of the
        agent caches the take's text and settings now."""
        take = await self.get(entry, take_id)
        audio = await self.curation.blobs.read(take.blob_sha256)
        if audio is None:
            raise StorageUnavailable(
                f"The audio of take {take_id} is missing from storage; `audiocache check` "
                "lists what is affected"
            )
        changes = {k: v for k, v in restored_values(take).items() if k not in _AUDIO_FIELDS}
        self.curation.forget_recent()
        return await self.curation.writer.update(
            entry,
            audio,
            parse_wav(audio),
            changes,
            history=TakeChange("restore", restoring=take.id),
        )

"""What engine threads and processes do so they stay out of the way of the event loop."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from collections.abc import Callable

log = logging.getLogger("audiocache.tts")


def lower_thread_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by ``nice`` (Linux: a thread is a task of its
    own, with its own nice value), so that under load the event loop thread, which answers
    cache hits, is scheduled before engine work. Best effort: elsewhere it does nothing."""
    if nice <= 0:
        return
    try:
        current = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, current + nice))
    except (AttributeError, OSError) as exc:
        log.debug("could not lower an engine thread's priority: %s", exc)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc
        return None
    return trim


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Give the heap's free pages back to the system (glibc keeps them otherwise: after Piper
    synthesized 8 long texts at once, 1.36 GB stayed resident; 0.43 GB after this)."""
    if _TRIM is not None:
        _TRIM(0)

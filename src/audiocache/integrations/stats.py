"""Counters the plugins keep (no framework imports, shared by Pipecat and LiveKit)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CacheStats"]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    stored: int = 0
    fail_open: int = 0

"""What text the cache accepts for synthesis and as a transcript (pure)."""

from __future__ import annotations

import unicodedata

from audiocache.errors import InvalidText

_ALLOWED_CONTROLS = {"\n", "\r", "\t"}


def validate_text(text: str, max_chars: int, *, name: str = "text") -> str:
    """Return the text if it is speakable; raise InvalidText with the reason if not."""
    if not text or not text.strip():
        raise InvalidText(f"{name} must not be empty")
    if len(text) > max_chars:
        raise InvalidText(f"{name} is {len(text)} characters; the limit is {max_chars}")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cs":
            raise InvalidText(f"{name} contains an unpaired surrogate, which is not valid Unicode")
        if category == "Cc" and char not in _ALLOWED_CONTROLS:
            raise InvalidText(f"{name} contains the control character U+{ord(char):04X}")
    return text

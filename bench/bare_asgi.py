"""The floor of a Python server here: a bare ASGI app that answers every request with the
same bytes from memory (the file named by BARE_ASGI_FILE), run by bench/hit_path.py under
the same uvicorn settings as audiocache. What audiocache costs on top of it is audiocache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ["BARE_ASGI_FILE"]).read_bytes()
HEADERS = [
    (b"content-type", b"audio/wav"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":  # read the body, as a runtime-path call would be read
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

"""The ``audiocache`` command. Installation commands (serve, settings, init, keys, check,
gc) work on the data folder; cache, agents, voices, stats, warm and regenerate work on the
data folder or, with ``--url``/``--key`` (``AUDIOCACHE_URL``/``AUDIOCACHE_KEY``), on a
running server through ``audiocache.client``. An error is one line on stderr, exit 1."""

from __future__ import annotations

import typer

from audiocache.cli import admin, cache
from audiocache.cli.agents import agents_app
from audiocache.cli.voices import voices_app

app = typer.Typer(
    help="Self-hosted TTS audio cache for voice agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin.register(app)
cache.register(app)
app.add_typer(agents_app, name="agents")
app.add_typer(voices_app, name="voices")


def main() -> None:
    app()


__all__ = ["app", "main"]

"""The ``audiocache`` command. Installation commands (serve, settings, init, keys, check,
gc) work on the data folder; cache, agents, voices, stats, warm and regenerate work on the
data folder or, with ``--url``/``--key`` (``AUDIOCACHE_URL``/``AUDIOCACHE_KEY``), on a
running server through ``audiocache.client``. An error is one line on stderr, exit 1; a
usage error (unknown option, missing argument) one line too, exit 2."""

from __future__ import annotations

import sys

import typer

from audiocache.cli import admin, cache, transfer
from audiocache.cli.agents import agents_app
from audiocache.cli.common import fail, usage_message
from audiocache.cli.voices import voices_app

app = typer.Typer(
    help="Self-hosted TTS audio cache for voice agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
admin.register(app)
cache.register(app)
transfer.register(app)  # export, import, takes upload
app.add_typer(agents_app, name="agents")
app.add_typer(voices_app, name="voices")


def main() -> None:
    """The ``audiocache`` command. click runs it unattended (``standalone_mode=False``) so
    that its errors are told here, in the one-line form, instead of usage and a panel."""
    command = typer.main.get_command(app)
    try:
        code = command.main(prog_name="audiocache", standalone_mode=False)
    except typer.TyperException as exc:  # click's errors (typer vendors click)
        # No arguments: the help is printed already (typer knows this one by name too).
        if type(exc).__name__ != "NoArgsIsHelpError":
            fail(usage_message(exc))
        sys.exit(exc.exit_code)
    except typer.Abort:
        fail("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]

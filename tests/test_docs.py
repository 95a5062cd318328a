"""Every setting is documented; the README names the two commands CI and newcomers run."""

from __future__ import annotations

import json
from pathlib import Path

from audiocache.config import Settings, settings_markdown

ROOT = Path(__file__).parent.parent


def test_configuration_doc_is_generated_from_the_settings() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_markdown(), (
        "run: audiocache settings --markdown > docs/configuration.md"
    )


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"`AUDIOCACHE_{name.upper()}`" in doc, f"AUDIOCACHE_{name.upper()} undocumented"
        assert field.description, f"{name} has no help text"


def test_readme_commands_match_ci() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_defaults_serve_on_loopback_8080(tmp_path: Path) -> None:
    settings = Settings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.resolved_database_url().startswith("sqlite+aiosqlite:///")


def test_vendored_contract_matches_the_shared_reference() -> None:
    """The repository's copy of the contract must not drift from the project's shared one."""
    vendored = ROOT / "tests" / "reference" / "agents-api-audio-cache.openapi.json"
    assert json.loads(vendored.read_text())["info"]["version"] == "1.0.11"
    shared = ROOT.parent / "shared" / "reference" / vendored.name
    if shared.exists():  # only beside the project's workspace; a bare clone has just the copy
        assert vendored.read_bytes() == shared.read_bytes()

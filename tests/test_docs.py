"""Every setting is documented; the README names the two commands CI and newcomers run."""

from __future__ import annotations

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

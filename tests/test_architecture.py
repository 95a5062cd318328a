"""Shape rules: the domain never imports the web framework; the public surface is guarded."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import audiocache

PACKAGE = Path(audiocache.__file__).parent
DOMAIN = ["cache", "storage", "audio", "tts", "models.py", "errors.py", "auth.py", "config"]
WEB = ("fastapi", "starlette")


def _python_files(part: str) -> list[Path]:
    path = PACKAGE / part
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("path", [p for part in DOMAIN for p in _python_files(part)], ids=str)
def test_domain_does_not_import_the_web_framework(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in WEB, f"{path} imports {name}"


def test_modules_stay_small() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    too_big = {str(p.relative_to(PACKAGE)): n for p, n in sizes.items() if n > 600}
    assert not too_big


def test_exported_members() -> None:
    exported = sorted(audiocache.__all__)
    assert exported == list(audiocache.__all__), "__all__ stays sorted"
    for name in exported:
        assert hasattr(audiocache, name)


def test_no_method_shadows_the_list_builtin() -> None:
    """A method named ``list`` makes ``list[...]`` in its own class body mean the method."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = {
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                }
                assert "list" not in names, f"{path}: {node.name}.list"


def test_mypy_is_strict_on_the_domain() -> None:
    import tomllib

    config = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = {m for o in config["overrides"] if o.get("strict") for m in o["module"]}
    expected = {"audiocache.cache.*", "audiocache.storage.*", "audiocache.audio.*"}
    assert expected | {"audiocache.tts.*", "audiocache.auth"} <= strict


@pytest.mark.parametrize("path", _python_files("client"), ids=str)
def test_the_client_needs_no_server_code(path: Path) -> None:
    """``audiocache.client`` runs where only httpx is installed: no web framework, no
    server module (its errors and models are its own)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in WEB, f"{path} imports {name}"
            if name.startswith("audiocache"):
                assert name.startswith("audiocache.client"), f"{path} imports {name}"

"""The bench talks to the product through its public entry points only: the CLI, HTTP, and the
Python modules docs/design.md lists under "Python entry points"."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def documented_modules() -> set[str]:
    text = (REPO / "docs" / "design.md").read_text()
    section = text.split("## Python entry points", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(minitoolai(?:\.\w+)*)`", section))


def bench_imports() -> dict[str, set[str]]:
    """Every ``minitoolai`` module a bench file imports -> the files importing it."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / "bench").rglob("*.py")):
        if any(part.startswith(".") for part in path.relative_to(REPO).parts):
            continue  # the peers' own installs (bench/.venvs, bench/.peers), not the bench
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name == "minitoolai" or name.startswith("minitoolai."):
                    found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    return found


def test_the_bench_imports_only_documented_modules() -> None:
    documented = documented_modules()
    assert "minitoolai.ledger.service" in documented  # the section was found and read
    imported = bench_imports()
    assert imported, "the bench imports nothing from minitoolai: the scan is broken"
    undocumented = {name: files for name, files in imported.items() if name not in documented}
    assert not undocumented, f"bench imports internals: {undocumented}"

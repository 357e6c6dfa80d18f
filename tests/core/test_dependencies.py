"""Every third-party module the package imports comes from a distribution that installing gennaker
brings: declared in pyproject.toml, or required (transitively) by one that is. A module installed on
the developer's machine by hand but declared nowhere passes every other test there and fails a fresh
install (croniter and prometheus-client once did)."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "gennaker"


def _imported_top_levels() -> set[str]:
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"gennaker", "__future__"}}


def _requirement_name(spec: str) -> str:
    return re.split(r"[\s;\[<>=!~(]", spec, maxsplit=1)[0].lower().replace("_", "-")


def _closure() -> set[str]:
    """The distributions installing gennaker with all its extras brings, by normalized name."""
    seen: set[str] = set()
    todo = ["gennaker"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for spec in requires:
            # an extra's requirements count (the test extra installs them all); markers other than
            # extras (a Python version, a platform) are taken as met
            todo.append(_requirement_name(spec))
    return seen


def test_every_imported_module_is_brought_by_the_declared_dependencies() -> None:
    by_module = metadata.packages_distributions()
    closure = _closure()
    problems = []
    for module in sorted(_imported_top_levels()):
        dists = [d.lower().replace("_", "-") for d in by_module.get(module, [])]
        if not dists:
            problems.append(f"{module}: imported by src/gennaker but not installed")
        elif not any(d in closure for d in dists):
            problems.append(f"{module}: from {', '.join(dists)}, which pyproject.toml does not bring")
    assert not problems, problems

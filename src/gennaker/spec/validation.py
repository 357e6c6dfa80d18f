"""Turn pydantic's errors into located problems (file:line:column: message)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gennaker.errors import Problem
from gennaker.spec.yamlload import Located, Path


def _describe(err: Any) -> str:
    kind = err.get("type", "")
    loc = err.get("loc", ())
    field = str(loc[-1]) if loc else "value"
    if kind == "extra_forbidden":
        return f"unknown field '{field}'"
    if kind == "missing":
        return f"missing required field '{field}'"
    msg = str(err.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if kind == "string_type" and isinstance(err.get("input"), bool):
        msg += " (YAML reads yes/no/on/off as true/false: quote it)"
    return f"{field}: {msg}" if loc else msg


def _in_document(located: Located, path: Path) -> Path:
    """Drop what pydantic adds to a location that is not in the document: the tag of a discriminated
    union (``triggers.0.git.repository`` is ``triggers.0.repository`` in the file)."""
    out: list[Any] = []
    for i, x in enumerate(path):
        here = (*out, x)
        tag = isinstance(x, str) and here not in located.positions and i + 1 < len(path)
        if tag and (*out, path[i + 1]) in located.positions:
            continue
        out.append(x)
    return tuple(out)


def pydantic_problems(exc: ValidationError, located: Located, prefix: Path = ()) -> list[Problem]:
    """Locate each of pydantic's errors in the document; skip values still holding ``${...}``.

    A field holding an expression is checked again once the expression is resolved at run time, so a
    type error on ``"${trigger.params.count}"`` for an int field is not a problem at load time.
    """
    problems = []
    for err in exc.errors():
        value = err.get("input")
        if isinstance(value, str) and "${" in value and err.get("type") != "extra_forbidden":
            continue
        loc = tuple(x for x in err.get("loc", ()) if not (isinstance(x, str) and x.startswith("function-")))
        problems.append(located.problem(_in_document(located, (*prefix, *loc)), _describe(err)))
    return problems

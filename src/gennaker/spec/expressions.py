"""Expressions in pipelines: ``${trigger.params.version}``, ``${stages.bake.outputs.image_id}``.

A value that is exactly one ``${...}`` resolves to the referenced value with its type (a list stays a
list); ``${...}`` inside longer text is interpolated as text. ``when`` conditions are a tiny safe
language (comparisons, ``and``/``or``/``not``, ``in``, literals) evaluated on Python's AST with a
whitelist: no calls, no attribute access, no names but the resolved references.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from typing import Any

REF = re.compile(r"\$\{\s*([^}]*?)\s*\}")
_ROOTS = ("trigger", "stages", "parameters", "execution", "pipeline", "application")


class ExpressionError(ValueError):
    pass


def references(value: Any) -> Iterator[str]:
    """Every reference path inside ``value`` (nested lists and dicts included)."""
    if isinstance(value, str):
        for m in REF.finditer(value):
            yield m.group(1)
    elif isinstance(value, dict):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def unterminated(text: str) -> bool:
    """True if ``text`` opens a ``${`` that no ``}`` closes."""
    return "${" in REF.sub("", text)


def check_reference(path: str, stage_ids: set[str], params: set[str]) -> str | None:
    """A message if ``path`` cannot be valid for this pipeline, else None."""
    parts = path.split(".")
    root = parts[0]
    if root not in _ROOTS:
        return f"unknown expression root '{root}' in ${{{path}}} (use trigger, stages, parameters, execution)"
    if root == "stages":
        if len(parts) < 3 or parts[2] not in ("outputs", "status"):
            return f"${{{path}}}: write stages.<id>.outputs.<key> or stages.<id>.status"
        if parts[1] not in stage_ids:
            return f"${{{path}}} names unknown stage '{parts[1]}'"
    if root == "parameters" and (len(parts) != 2 or parts[1] not in params):
        return f"${{{path}}} names unknown parameter '{'.'.join(parts[1:])}'"
    if root == "trigger" and len(parts) >= 2 and parts[1] == "params" and (len(parts) != 3 or parts[2] not in params):
        return f"${{{path}}} names unknown parameter '{'.'.join(parts[2:])}'"
    return None


def lookup(path: str, scope: dict[str, Any]) -> Any:
    current: Any = scope
    walked: list[str] = []
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            where = ".".join(walked) or "the context"
            raise ExpressionError(f"${{{path}}}: {where} has no '{part}'")
        walked.append(part)
    return current


def resolve(value: Any, scope: dict[str, Any]) -> Any:
    """Resolve every ``${...}`` in ``value`` against ``scope``."""
    if isinstance(value, str):
        whole = REF.fullmatch(value.strip())
        if whole:
            return lookup(whole.group(1), scope)
        return REF.sub(lambda m: _text(lookup(m.group(1), scope)), value)
    if isinstance(value, dict):
        return {k: resolve(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope) for v in value]
    return value


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


_ALLOWED = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.Compare,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.List,
    ast.Tuple,
)


def _prepare(condition: str) -> tuple[ast.Expression, dict[str, str]]:
    names: dict[str, str] = {}

    def bind(m: re.Match[str]) -> str:
        name = f"__ref{len(names)}"
        names[name] = m.group(1)
        return name

    source = REF.sub(bind, condition)
    source = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", source))
    source = re.sub(r"\bnull\b", "None", source)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"cannot parse condition {condition!r}: {exc.msg}") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ExpressionError(f"condition {condition!r} uses {type(node).__name__}, which is not allowed")
        if isinstance(node, ast.Name) and node.id not in names and node.id not in ("True", "False", "None"):
            raise ExpressionError(f"condition {condition!r}: unknown name '{node.id}' (quote strings)")
    return tree, names


def check_condition(condition: str) -> str | None:
    try:
        _prepare(condition)
    except ExpressionError as exc:
        return str(exc)
    return None


def evaluate_condition(condition: str, scope: dict[str, Any], missing_ok: Callable[[str], bool] | None = None) -> bool:
    """Evaluate ``condition``. A reference that does not resolve is an error, unless ``missing_ok(path)``
    says it may be absent (e.g. an output of a stage that was skipped): then it reads as null."""
    tree, names = _prepare(condition)
    values = {}
    for name, path in names.items():
        try:
            values[name] = lookup(path, scope)
        except ExpressionError:
            if missing_ok is None or not missing_ok(path):
                raise
            values[name] = None
    return bool(_eval(tree.body, values))


def _eval(node: ast.AST, values: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values[node.id] if node.id in values else {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.List | ast.Tuple):
        return [_eval(e, values) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        return not _eval(node.operand, values)
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comp in zip(node.ops, node.comparators, strict=True):
            right = _eval(comp, values)
            if not _compare(op, left, right):
                return False
            left = right
        return True
    raise ExpressionError(f"unsupported expression {type(node).__name__}")


def _compare(op: ast.cmpop, a: Any, b: Any) -> bool:
    try:
        if isinstance(op, ast.Eq):
            return bool(a == b or (a is not None and b is not None and str(a) == str(b) and _scalar(a, b)))
        if isinstance(op, ast.NotEq):
            return not _compare(ast.Eq(), a, b)
        if isinstance(op, ast.In):
            return a in b
        if isinstance(op, ast.NotIn):
            return a not in b
        a, b = _numeric(a), _numeric(b)
        if isinstance(op, ast.Lt):
            return bool(a < b)
        if isinstance(op, ast.LtE):
            return bool(a <= b)
        if isinstance(op, ast.Gt):
            return bool(a > b)
        if isinstance(op, ast.GtE):
            return bool(a >= b)
    except TypeError as exc:
        raise ExpressionError(f"cannot compare {a!r} and {b!r}: {exc}") from None
    raise ExpressionError("unsupported comparison")


def _scalar(a: Any, b: Any) -> bool:
    # "3" == 3 is true (parameters arrive as text), but lists/dicts compare only structurally.
    return not isinstance(a, list | dict) and not isinstance(b, list | dict)


def _numeric(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v

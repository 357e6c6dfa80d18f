"""Expressions in pipelines: ``${trigger.params.version}``, ``${stages.bake.outputs.image_id}``.

A value that is exactly one ``${...}`` resolves to the referenced value with its type (a list stays a
list); ``${...}`` inside longer text is interpolated as text. ``when`` conditions are a tiny safe
language with its own lexer and parser (no ``eval``, no Python ``ast``): literals, ``${...}``
references, comparisons, ``in``/``not in``, ``and``/``or``/``not``, parentheses and lists.

Everything here is linear in the length of its input: references are found with ``str.find`` (a
backtracking regex took minutes on ``"${" + " " * 5000``), and conditions are bounded in length and
nesting before they are parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_ROOTS = ("trigger", "stages", "parameters", "execution", "pipeline", "application")
# Kayenta's template variables: in a metric query (a field a stage config lists in
# ``template_fields``), ``${scope}`` and ``${location}`` name the server group being measured and its
# region. The metric source fills them in, once per group; the engine leaves them as written there,
# and anywhere else they are unknown roots, refused by validation.
TEMPLATE_ROOTS = frozenset({"scope", "location"})

MAX_REFERENCE = 256  # characters between ``${`` and ``}``
MAX_CONDITION = 4096  # characters in one ``when``
MAX_DEPTH = 32  # nested parentheses and lists in one ``when``


class ExpressionError(ValueError):
    pass


# --- references -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """One ``${path}`` in a text: ``start`` is the index of ``$``, ``end`` one past ``}``."""

    path: str
    start: int
    end: int


def scan(text: str) -> tuple[list[str | Ref], int | None]:
    """Split ``text`` into literal pieces and references, and the index of an unterminated ``${``.

    One pass: after each ``${`` the next ``}`` closes it; if there is none, nothing after it can be
    closed either, so scanning stops there.
    """
    pieces: list[str | Ref] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            break
        end = text.find("}", start + 2)
        if end < 0:
            if start > pos:
                pieces.append(text[pos:])
            return pieces, start
        if start > pos:
            pieces.append(text[pos:start])
        pieces.append(Ref(text[start + 2 : end].strip(), start, end + 1))
        pos = end + 1
    if pos < len(text):
        pieces.append(text[pos:])
    return pieces, None


def references(value: Any) -> Iterator[str]:
    """Every reference path inside ``value`` (nested lists and dicts included)."""
    if isinstance(value, str):
        for piece in scan(value)[0]:
            if isinstance(piece, Ref):
                yield piece.path
    elif isinstance(value, dict):
        for v in value.values():
            yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def unterminated(text: str) -> bool:
    """True if ``text`` opens a ``${`` that no ``}`` closes."""
    return scan(text)[1] is not None


def check_reference(path: str, stage_ids: set[str], params: set[str], template: bool = False) -> str | None:
    """A message if ``path`` cannot be valid for this pipeline, else None. ``template``: the value is a
    metric query, where ``${scope}`` and ``${location}`` are the metric source's to fill."""
    if len(path) > MAX_REFERENCE:
        return f"expression ${{{path[:40]}...}} is longer than {MAX_REFERENCE} characters"
    parts = path.split(".")
    root = parts[0]
    if root in TEMPLATE_ROOTS:
        if template and len(parts) == 1:
            return None
        where = "a metric query" if template else "a metric query (a canary's analysis), not here"
        return f"${{{path}}} is a metric template variable: write ${{{root}}} in {where}"
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


def resolve(value: Any, scope: dict[str, Any], keep: frozenset[str] = frozenset()) -> Any:
    """Resolve every ``${...}`` in ``value`` against ``scope``; references whose root is in ``keep``
    (a metric query's ``${scope}``) stay as written, for whoever fills them later."""
    if isinstance(value, str):
        pieces, open_at = scan(value)
        if open_at is not None:
            raise ExpressionError(f"unterminated expression in {value[:80]!r} (missing '}}')")
        if keep:
            pieces = [f"${{{p.path}}}" if isinstance(p, Ref) and p.path in keep else p for p in pieces]
        refs = [p for p in pieces if isinstance(p, Ref)]
        if len(refs) == 1 and all(isinstance(p, Ref) or not p.strip() for p in pieces):
            return lookup(refs[0].path, scope)
        return "".join(p if isinstance(p, str) else _text(lookup(p.path, scope)) for p in pieces)
    if isinstance(value, dict):
        return {k: resolve(v, scope, keep) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, scope, keep) for v in value]
    return value


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


# --- conditions: lexer ------------------------------------------------------------------------

_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "(", ")", "[", "]", ",")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True)
class _Token:
    kind: str  # "op", "word", "num", "str", "ref", "end"
    value: Any
    at: int  # 0-based index in the condition, for messages


def _fail(condition: str, at: int, message: str) -> ExpressionError:
    return ExpressionError(f"condition {_short(condition)}: {message} at character {at + 1}")


def _short(condition: str) -> str:
    return repr(condition if len(condition) <= 80 else condition[:77] + "...")


def _tokens(condition: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(condition)
    while i < n:
        c = condition[i]
        if c.isspace():
            i += 1
        elif condition.startswith("${", i):
            end = condition.find("}", i + 2)
            if end < 0:
                raise _fail(condition, i, "unterminated expression (missing '}')")
            out.append(_Token("ref", condition[i + 2 : end].strip(), i))
            i = end + 1
        elif c in "'\"":
            i = _string(condition, i, out)
        elif c.isdigit() or (c == "-" and i + 1 < n and condition[i + 1].isdigit()):
            j = i + 1
            while j < n and (condition[j].isdigit() or condition[j] == "."):
                j += 1
            try:
                out.append(_Token("num", _number(condition[i:j]), i))
            except ValueError:
                raise _fail(condition, i, f"'{condition[i:j]}' is not a number") from None
            if j < n and condition[j] in _WORD:
                raise _fail(condition, i, "a number runs into a word (quote strings)")
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and condition[j] in _WORD:
                j += 1
            word = condition[i:j]
            if word not in _KEYWORDS:
                raise _fail(condition, i, f"unknown name '{word}' (quote strings; write references as ${{...}})")
            out.append(_Token("word", word, i))
            i = j
        else:
            for op in _OPERATORS:
                if condition.startswith(op, i):
                    out.append(_Token("op", op, i))
                    i += len(op)
                    break
            else:
                raise _fail(condition, i, f"'{c}' is not allowed")
    out.append(_Token("end", None, n))
    return out


def _string(condition: str, i: int, out: list[_Token]) -> int:
    """A quoted string from ``condition[i]``; its ``${...}`` are kept as references to interpolate."""
    quote, j, n = condition[i], i + 1, len(condition)
    pieces: list[str | Ref] = []
    text: list[str] = []
    escapes = {"n": "\n", "t": "\t"}
    while j < n:
        c = condition[j]
        if c == quote:
            if text:
                pieces.append("".join(text))
            out.append(_Token("str", pieces, i))
            return j + 1
        if c == "\\" and j + 1 < n:
            text.append(escapes.get(condition[j + 1], condition[j + 1]))
            j += 2
        elif condition.startswith("${", j):
            end = condition.find("}", j + 2)
            if end < 0:
                raise _fail(condition, j, "unterminated expression (missing '}')")
            if text:
                pieces.append("".join(text))
                text = []
            pieces.append(Ref(condition[j + 2 : end].strip(), j, end + 1))
            j = end + 1
        else:
            text.append(c)
            j += 1
    raise _fail(condition, i, f"unterminated string (missing {quote})")


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


# --- conditions: parser -----------------------------------------------------------------------
# Nodes are tuples: ("lit", v), ("ref", path), ("str", pieces), ("list", [nodes]), ("not", node),
# ("and", [nodes]), ("or", [nodes]), ("cmp", first, [(op, node), ...]).

Node = tuple[Any, ...]
_COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class _Parser:
    def __init__(self, condition: str, tokens: list[_Token]):
        self.condition, self.tokens, self.i, self.depth = condition, tokens, 0, 0

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def is_(self, kind: str, value: Any) -> bool:
        tok = self.peek()
        return tok.kind == kind and tok.value == value

    def expect(self, value: str) -> None:
        if not self.is_("op", value):
            raise self.fail(f"expected '{value}'")
        self.i += 1

    def fail(self, message: str) -> ExpressionError:
        tok = self.peek()
        found = "the end" if tok.kind == "end" else repr(self.condition[tok.at : tok.at + 20])
        return _fail(self.condition, tok.at, f"{message}, found {found}")

    def parse(self) -> Node:
        node = self.disjunction()
        if self.peek().kind != "end":
            raise self.fail("expected and, or or the end")
        return node

    def disjunction(self) -> Node:
        parts = [self.conjunction()]
        while self.is_("word", "or"):
            self.i += 1
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else ("or", parts)

    def conjunction(self) -> Node:
        parts = [self.negation()]
        while self.is_("word", "and"):
            self.i += 1
            parts.append(self.negation())
        return parts[0] if len(parts) == 1 else ("and", parts)

    def negation(self) -> Node:
        count = 0  # counted, not recursed: "not not ... x" must not exhaust the stack
        while self.is_("word", "not"):
            self.i += 1
            count += 1
        node = self.comparison()
        return node if count == 0 else ("not", node, count)

    def comparison(self) -> Node:
        first = self.operand()
        rest: list[tuple[str, Node]] = []
        while True:
            tok = self.peek()
            if tok.kind == "op" and tok.value in _COMPARISONS:
                op = self.take().value
            elif self.is_("word", "in"):
                self.i += 1
                op = "in"
            elif (
                self.is_("word", "not")
                and self.tokens[self.i + 1].kind == "word"
                and self.tokens[self.i + 1].value == "in"
            ):
                self.i += 2
                op = "not in"
            else:
                break
            rest.append((op, self.operand()))
        return first if not rest else ("cmp", first, rest)

    def operand(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return ("lit", tok.value)
        if tok.kind == "str":
            return ("str", tok.value)
        if tok.kind == "ref":
            return ("ref", tok.value)
        if tok.kind == "word" and tok.value in ("true", "false", "null"):
            return ("lit", {"true": True, "false": False, "null": None}[tok.value])
        if tok.kind == "op" and tok.value in ("(", "["):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _fail(self.condition, tok.at, f"nested more than {MAX_DEPTH} levels deep")
            if tok.value == "(":
                node = self.disjunction()
                self.expect(")")
            else:
                items: list[Node] = []
                while not self.is_("op", "]"):
                    items.append(self.disjunction())
                    if not self.is_("op", ","):
                        break
                    self.i += 1
                self.expect("]")
                node = ("list", items)
            self.depth -= 1
            return node
        self.i -= 1
        raise self.fail("expected a value")


def parse_condition(condition: str) -> Node:
    """The parsed condition; ExpressionError naming the character where it goes wrong."""
    if len(condition) > MAX_CONDITION:
        raise ExpressionError(f"condition is longer than {MAX_CONDITION} characters ({len(condition)})")
    if not condition.strip():
        raise ExpressionError("empty condition")
    return _Parser(condition, _tokens(condition)).parse()


def check_condition(condition: str) -> str | None:
    try:
        parse_condition(condition)
    except ExpressionError as exc:
        return str(exc)
    return None


# --- conditions: evaluation -------------------------------------------------------------------


def evaluate_condition(condition: str, scope: dict[str, Any], missing_ok: Callable[[str], bool] | None = None) -> bool:
    """Evaluate ``condition``. A reference that does not resolve is an error, unless ``missing_ok(path)``
    says it may be absent (e.g. an output of a stage that was skipped): then it reads as null (and as
    empty text inside a quoted string)."""
    tree = parse_condition(condition)

    def value_of(path: str) -> Any:
        try:
            return lookup(path, scope)
        except ExpressionError:
            if missing_ok is None or not missing_ok(path):
                raise
            return None

    # every reference is resolved, even in a branch that short-circuits: a typo fails the stage
    for path in references(condition):
        value_of(path)
    return _truth(_eval(tree, value_of))


def _eval(node: Node, value_of: Callable[[str], Any]) -> Any:
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "ref":
        return value_of(node[1])
    if kind == "str":
        return "".join(p if isinstance(p, str) else _text(value_of(p.path)) for p in node[1])
    if kind == "list":
        return [_eval(n, value_of) for n in node[1]]
    if kind == "not":
        result = _truth(_eval(node[1], value_of))
        return result if node[2] % 2 == 0 else not result
    if kind == "and":
        return all(_truth(_eval(n, value_of)) for n in node[1])
    if kind == "or":
        return any(_truth(_eval(n, value_of)) for n in node[1])
    left = _eval(node[1], value_of)
    for op, right_node in node[2]:
        right = _eval(right_node, value_of)
        if not _compare(op, left, right):
            return False
        left = right
    return True


_TRUE_TEXT = {"true", "yes", "on", "1"}
_FALSE_TEXT = {"false", "no", "off", "0", "", "null", "none"}


def _truth(v: Any) -> bool:
    """What a value means as a condition. Text is read the way people write flags (a parameter
    ``deploy=false`` is false, not a non-empty string); anything else ambiguous is an error."""
    if isinstance(v, bool):
        return v
    if v is None:
        return False
    if isinstance(v, int | float):
        return v != 0
    if isinstance(v, str):
        t = v.strip().lower()
        if t in _TRUE_TEXT:
            return True
        if t in _FALSE_TEXT:
            return False
    raise ExpressionError(f"{_describe(v)} is neither true nor false (compare it, e.g. == 'yes')")


def _describe(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _equal(a: Any, b: Any) -> bool:
    """Equality across the types parameters and outputs arrive in: outputs and parameters are
    often text, so ``'3' == 3`` and ``'true' == true`` hold; lists and mappings compare as such."""
    if isinstance(a, str) and not isinstance(b, str):
        a, b = b, a
    if isinstance(b, str) and not isinstance(a, str):
        if a is None:
            return False
        if isinstance(a, bool):
            return b.strip().lower() == _text(a)
        if isinstance(a, int | float):
            try:
                return float(b) == float(a)
            except ValueError:
                return False
        return False
    if isinstance(a, bool) != isinstance(b, bool):
        return False  # true is not 1
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("in", "not in"):
        found = _contains(a, b)
        return found if op == "in" else not found
    x, y = _numeric(a), _numeric(b)
    if not (_is_number(x) and _is_number(y)) and not (isinstance(x, str) and isinstance(y, str)):
        raise ExpressionError(f"cannot compare {_describe(a)} {op} {_describe(b)}")
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    return bool(x >= y)


def _contains(item: Any, container: Any) -> bool:
    if isinstance(container, list):
        return any(_equal(item, x) for x in container)
    if isinstance(container, dict):
        return _text(item) in container
    if isinstance(container, str):
        return _text(item) in container
    if container is None:
        return False  # e.g. a missing output of a skipped stage: nothing is in it
    raise ExpressionError(f"cannot look for {_describe(item)} in {_describe(container)}")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)  # true < 2 is an error, not 1 < 2


def _numeric(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v

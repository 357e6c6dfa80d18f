"""Expressions inside a shell command: every interpolated value stays data, never shell syntax.

``command: "echo ${trigger.params.version}"`` runs in ``/bin/sh -c``. Pasting a value in as text
would let ``1.0; id > f`` run ``id`` (the classic CI injection). So each value is quoted for the
place it stands in the script, found by a small lexer of sh's quoting:

- outside quotes (also inside ``$(...)``): ``shlex.quote`` -- one word, exactly the value;
- inside double quotes: ``\\``, ``"``, ``$`` and backquotes are backslash-escaped -- the value as is;
- inside single quotes: the quote is closed, the quoted value put in, and the quote reopened.

Where a value cannot be quoted safely (after a backslash, in a comment, inside backquotes, ``$((...))``
or a here-document, or after a ``<<`` the lexer does not follow) the command is refused with a message saying to pass
the value through ``env`` instead, which is always safe: ``env: {VERSION: "${...}"}`` and ``"$VERSION"``.
A command that is exactly one expression naming a list still becomes that list (exec'd, no shell).
Other fields that hold a shell script (``user_data`` starting ``#!/bin/sh``) are quoted the same way.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from gennaker.spec.expressions import ExpressionError, Ref, lookup, resolve, scan

_PLAIN, _SINGLE, _DOUBLE, _SUBST, _UNSURE = "plain", "single", "double", "subst", "unsure"
_ARITH, _BACKQ = "arithmetic", "backquotes"  # never quoted into: arithmetic is no place for text, and
# backquotes read backslashes once more
_WORD_START = set(" \t\n;&|()<>")
_HEREDOC = re.compile(r"<<-?[ \t]*(['\"]?)([A-Za-z0-9_.-]+)\1")


def interpolate(command: str, scope: dict[str, Any]) -> str | list[Any]:
    """``command`` with every ``${...}`` resolved against ``scope`` and quoted for ``/bin/sh``."""
    pieces, open_at = scan(command)
    if open_at is not None:
        raise ExpressionError(f"unterminated expression in {command[:80]!r} (missing '}}')")
    refs = [p for p in pieces if isinstance(p, Ref)]
    if not refs:
        return command
    if len(refs) == 1 and all(isinstance(p, Ref) or not p.strip() for p in pieces):
        value = lookup(refs[0].path, scope)
        if isinstance(value, list):
            return value  # a list command is exec'd: nothing goes through a shell
    contexts = _contexts(command, [(r.start, r.end) for r in refs])
    out: list[str] = []
    pos = 0
    for ref, context in zip(refs, contexts, strict=True):
        out.append(command[pos : ref.start])
        out.append(_quoted(_text(lookup(ref.path, scope)), context, ref.path))
        pos = ref.end
    out.append(command[pos:])
    return "".join(out)


def problems(command: str) -> list[str]:
    """Why some values could not be put into ``command`` (one message per such reference)."""
    pieces, open_at = scan(command)
    refs = [p for p in pieces if isinstance(p, Ref)]
    if open_at is not None or not refs:
        return []  # an unterminated expression is reported by the expression checks
    found = []
    for ref, context in zip(refs, _contexts(command, [(r.start, r.end) for r in refs]), strict=True):
        try:
            _quoted("", context, ref.path)
        except ExpressionError as exc:
            found.append(str(exc))
    return found


def is_shell_script(text: str) -> bool:
    """True for text that starts with a ``#!`` line naming sh, bash, dash or ash (e.g. user data)."""
    if not text.startswith("#!"):
        return False
    words = text[2:].split("\n", 1)[0].split()
    names = [w.rsplit("/", 1)[-1] for w in words[:2]]
    if names and names[0] == "env":
        names = names[1:]
    return bool(names) and names[0] in ("sh", "bash", "dash", "ash")


def resolve_script(value: Any, scope: dict[str, Any]) -> Any:
    """Resolve a field that may hold a shell script: quoted like a command if it is one."""
    if isinstance(value, str) and is_shell_script(value):
        return interpolate(value, scope)
    return resolve(value, scope)


def _quoted(value: str, context: str, path: str) -> str:
    if context in (_PLAIN, _SUBST):
        return shlex.quote(value)
    if context == _DOUBLE:
        return re.sub(r'([\\"$`])', r"\\\1", value)
    if context == _SINGLE:
        return "'" + shlex.quote(value) + "'"
    raise ExpressionError(
        f"${{{path}}} stands where its value cannot be quoted safely for the shell (after a backslash, in a "
        "comment, inside backquotes, $((...)) or a here-document): pass it through env instead, e.g. "
        f'env: {{VALUE: "${{{path}}}"}} and "$VALUE" in the command'
    )


def _contexts(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """The quoting context sh is in at each reference (``spans``, ascending), in one pass over ``text``.

    A reference the lexer steps over (after a backslash, in a comment) is ``_UNSURE``: its value could
    end the comment or follow the backslash."""
    result: list[str] = []
    stack = [_PLAIN]  # innermost last
    parens = [0]  # per $( ... ): parentheses opened inside it
    heredocs: list[str] = []  # delimiters of here-documents whose bodies start at the next newline
    in_heredoc: str | None = None
    todo = iter(spans)
    span = next(todo, None)
    i, n = 0, len(text)
    while span is not None:
        if i >= span[0]:
            exact = i == span[0] and in_heredoc is None
            result.append(stack[-1] if exact else _UNSURE)
            i = max(i, span[1])
            span = next(todo, None)
            continue
        if i >= n:
            break
        c = text[i]
        top = stack[-1]
        if in_heredoc is not None:
            end = text.find("\n", i)
            end = n if end < 0 else end
            while span is not None and span[0] < end:  # a reference in a here-document's body
                result.append(_UNSURE)
                span = next(todo, None)
            if text[i:end].lstrip("\t") == in_heredoc:
                in_heredoc = heredocs.pop(0) if heredocs else None
            i = end + 1
            continue
        if top == _SINGLE:
            if c == "'":
                stack.pop()
            i += 1
            continue
        if c == "\\":  # the next character is literal (a newline after it is removed)
            i += 2
            continue
        if top == _BACKQ:
            if c == "`":
                stack.pop()
            i += 1
            continue
        if top == _UNSURE:
            i += 1
            continue
        if c == "`":
            stack.append(_BACKQ)
            i += 1
            continue
        if text.startswith("$((", i):
            stack.append(_ARITH)
            parens.append(0)
            i += 3
            continue
        if text.startswith("$(", i):
            stack.append(_SUBST)
            parens.append(0)
            i += 2
            continue
        if top == _DOUBLE:
            if c == '"':
                stack.pop()
            i += 1
            continue
        # outside quotes, or inside $(...): quotes, comments, here-documents, parentheses
        if text.startswith("$'", i):
            stack.append(_UNSURE)  # bash reads $'...' with escapes, dash as $ and '...': they part ways
        elif text.startswith("((", i):
            stack.append(_ARITH)  # bash's arithmetic command expands what is inside as if in "..."
            parens.append(0)
            i += 2
            continue
        elif c == "'":
            stack.append(_SINGLE)
        elif c == '"':
            stack.append(_DOUBLE)
        elif c == "#" and (i == 0 or text[i - 1] in _WORD_START):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif text.startswith("<<", i):
            m = _HEREDOC.match(text, i)
            if m is None:
                stack.append(_UNSURE)
            else:
                heredocs.append(m.group(2))
                i = m.end()
                continue
        elif c == "\n" and heredocs:
            in_heredoc = heredocs.pop(0)
        elif top in (_SUBST, _ARITH) and c == "(":
            parens[-1] += 1
        elif top in (_SUBST, _ARITH) and c == ")":
            if parens[-1] == 0:
                i += 2 if stack.pop() == _ARITH else 1  # $(( ... )) closes with two
                parens.pop()
                continue
            parens[-1] -= 1
        i += 1
    while span is not None:  # past the end of what could be lexed
        result.append(_UNSURE)
        span = next(todo, None)
    return result


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)

"""Load YAML into plain Python values while remembering where each value stood in the file.

Validation errors must name ``file:line:column``; PyYAML's composed node tree has the marks, so we
build values from nodes ourselves and keep a map from each value's path to its position.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from gennaker.errors import Problem, ValidationFailed

Path = tuple[str | int, ...]

_MAX_NODES = 100_000  # guards against alias bombs ("billion laughs")


@dataclass
class Located:
    """A document's value plus the position (1-based line, column) of every path in it."""

    file: str
    value: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Path) -> tuple[int, int]:
        """The position of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), (1, 1))

    def problem(self, path: Path, message: str) -> Problem:
        line, col = self.where(path)
        return Problem(self.file, line, col, message)


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.constructor = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path, active: frozenset[int]) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooBig(node)
        self.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in active:
            self._problem(node, "recursive alias: a value refers to itself")
            return None
        if isinstance(node, yaml.MappingNode):
            self.constructor.flatten_mapping(node)  # resolves merge keys (<<)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self._problem(key_node, "a mapping key must be a plain value, not a list or mapping")
                    continue
                key = self.constructor.construct_object(key_node)
                if not isinstance(key, str | int | float | bool) or key is None:
                    self._problem(key_node, f"unsupported mapping key {key!r}")
                    continue
                skey = str(key)
                if skey in out:
                    self._problem(key_node, f"duplicate key '{skey}'")
                    continue
                out[skey] = self.build(value_node, (*path, skey), active | {id(node)})
                self.positions[(*path, skey)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), active | {id(node)}) for i, item in enumerate(node.value)]
        return self.constructor.construct_object(node)

    def _problem(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, message))


class _TooBig(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


def load_yaml(text: str, file: str = "<string>") -> Located:
    """Parse one YAML document; raise ValidationFailed with positions on any syntax problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        raise ValidationFailed([Problem(file, line, col, f"YAML syntax: {what}")]) from None
    except yaml.YAMLError as exc:  # reader errors (bad bytes) carry no mark
        raise ValidationFailed([Problem(file, 1, 1, f"YAML syntax: {exc}")]) from None
    except RecursionError:
        raise ValidationFailed([Problem(file, 1, 1, "YAML nesting is too deep")]) from None
    if root is None:
        return Located(file, None, {(): (1, 1)})
    builder = _Builder(file)
    try:
        value = builder.build(root, (), frozenset())
    except _TooBig as big:
        m = big.node.start_mark
        raise ValidationFailed(
            [Problem(file, m.line + 1, m.column + 1, "document too large (alias expansion?)")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ValidationFailed([Problem(file, line, col, f"YAML: {exc.problem or exc}")]) from None
    except RecursionError:
        raise ValidationFailed([Problem(file, 1, 1, "YAML nesting is too deep")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. timestamps out of range
        raise ValidationFailed([Problem(file, 1, 1, f"YAML value: {exc}")]) from None
    if builder.problems:
        raise ValidationFailed(builder.problems)
    return Located(file, value, builder.positions)


def load_yaml_file(path: str) -> Located:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ValidationFailed([Problem(path, 1, 1, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed([Problem(path, 1, 1, f"cannot read file: {exc}")]) from None
    return load_yaml(text, path)

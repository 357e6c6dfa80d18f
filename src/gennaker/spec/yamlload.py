"""Load YAML into plain Python values while remembering where each value stood in the file.

Validation errors must name ``file:line:column``; PyYAML's composed node tree has the marks, so we
build values from nodes ourselves and keep a map from each value's path to its position.

Size, nesting and alias use are measured before the document is composed (one streaming pass over
libyaml's events), so no document costs more than the limits allow; see ``gennaker.spec.limits``.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from gennaker.errors import Problem, ValidationFailed
from gennaker.spec.limits import DEFAULT_LIMITS, Limits

Path = tuple[str | int, ...]

# libyaml when present (about 6x faster); the pure-Python loader gives the same nodes and marks
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a document is turned into objects.

    A megabyte of YAML becomes a few hundred thousand objects, which set off full collections that
    stop every thread for a third of a second each (in a server: the event loop and the workers).
    What is built is a tree, freed by reference counting; the pause is bounded by the size limit,
    and collection resumes when the last thread inside leaves.
    """
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_was_enabled:
                gc.enable()


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
        return Problem(self.file, line, col, one_line(message))


MAX_MESSAGE = 300


def one_line(message: str) -> str:
    """A message fit for one line: messages quote what they refuse, which may be a megabyte long."""
    message = message.replace("\n", " ")
    if len(message) <= MAX_MESSAGE:
        return message
    return f"{message[: MAX_MESSAGE - 40]}... ({len(message):,} characters)"


class _Builder:
    def __init__(self, file: str, max_nodes: int):
        self.file = file
        self.positions: dict[Path, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.count = 0
        self.max_nodes = max_nodes
        self.active: set[int] = set()  # collections being built: a node met again inside itself recurses
        # a constructor alone: a whole SafeLoader is a reference cycle (its parser state holds bound
        # methods) that kept every node alive until the next full garbage collection
        self.constructor = yaml.constructor.SafeConstructor()

    def values(self, root: yaml.Node) -> Any:
        try:
            return self.build(root, ())
        finally:
            self.constructor.constructed_objects.clear()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > self.max_nodes:
            raise _TooBig(node)
        self.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if id(node) in self.active:
            self._problem(node, "recursive alias: a value refers to itself")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.constructor.construct_object(node)
        self.active.add(id(node))
        try:
            return self._collection(node, path)
        finally:
            self.active.discard(id(node))

    def _collection(self, node: yaml.Node, path: Path) -> Any:
        if not isinstance(node, yaml.MappingNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged = {**self._merge(value_node, path), **merged}  # an earlier merge key wins
                continue
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
            out[skey] = self.build(value_node, (*path, skey))
            self.positions[(*path, skey)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return {**merged, **out} if merged else out

    def _merge(self, value_node: yaml.Node, path: Path) -> dict[str, Any]:
        """The mappings a merge key (``<<: *base`` or ``<<: [*a, *b]``) brings in, built like any other
        values so that they count against the node limit (PyYAML's own flattening copies merged keys
        at every level, which grows exponentially with nested merges)."""
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        merged: dict[str, Any] = {}
        here = self.positions.get(path)
        for source in reversed(sources):  # the first mapping listed wins
            if not isinstance(source, yaml.MappingNode):
                self._problem(source, "a merge key (<<) takes a mapping or a list of mappings")
                continue
            value = self.build(source, path)
            if isinstance(value, dict):
                merged.update(value)
        if here is not None:
            self.positions[path] = here
        return merged

    def _problem(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, one_line(message)))


class _TooBig(Exception):
    def __init__(self, node: yaml.Node):
        self.node = node


def _too_large(file: str, size: str, limits: Limits) -> ValidationFailed:
    return ValidationFailed(
        [
            Problem(
                file, 1, 1, f"document is larger than {limits.document_bytes:,} bytes ({size}; limits.document_bytes)"
            )
        ]
    )


def _compose(text: str, file: str, limits: Limits) -> yaml.Node | None:
    """PyYAML's node tree, composed here from libyaml's events with the limits checked on the way.

    Not ``yaml.compose``: libyaml's composer is compiled code that holds the GIL for the whole
    document (a second per megabyte, with the server's event loop and workers stopped), and it
    measures neither depth nor aliases. Taking the events one at a time keeps other threads running,
    and lets a document over a limit be refused at the point where it goes over.
    """
    if len(text) > limits.document_bytes or (
        len(text) * 4 > limits.document_bytes and len(text.encode("utf-8", "replace")) > limits.document_bytes
    ):
        raise _too_large(file, f"{len(text.encode('utf-8', 'replace')):,} bytes", limits)
    resolver = _Resolver()
    anchors: dict[str, yaml.Node] = {}
    open_: list[list[Any]] = []  # [collection node, mapping key waiting for its value]
    root: yaml.Node | None = None
    documents = aliases = 0

    def place(node: yaml.Node) -> None:
        nonlocal root
        if not open_:
            root = node
            return
        top = open_[-1]
        if isinstance(top[0], yaml.SequenceNode):
            top[0].value.append(node)
        elif top[1] is None:
            top[1] = node
        else:
            top[0].value.append((top[1], node))
            top[1] = None

    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
            node: yaml.Node = yaml.ScalarNode(tag, event.value, *_marks(event), style=event.style)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= limits.yaml_depth:
                raise ValidationFailed(
                    [_at(file, event, f"nested more than {limits.yaml_depth} levels deep (limits.yaml_depth)")]
                )
            cls = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolver.resolve(cls, None, event.implicit)
            node = cls(tag, [], *_marks(event), flow_style=event.flow_style)
        elif isinstance(event, yaml.CollectionEndEvent):
            open_.pop()
            continue
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > limits.yaml_aliases:
                raise ValidationFailed(
                    [_at(file, event, f"more than {limits.yaml_aliases:,} aliases (limits.yaml_aliases)")]
                )
            if event.anchor not in anchors:
                raise ValidationFailed([_at(file, event, f"YAML: found undefined alias '{event.anchor}'")])
            place(anchors[event.anchor])
            continue
        else:
            if isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise ValidationFailed([_at(file, event, "YAML: expected a single document, found another")])
            continue
        if event.anchor is not None:  # a scalar or collection start, both may carry an anchor
            anchors[event.anchor] = node
        place(node)
        if isinstance(node, yaml.CollectionNode):
            open_.append([node, None])
    return root


class _Resolver(yaml.resolver.Resolver):
    """The tags SafeLoader gives plain scalars (int, float, bool, null, timestamp, str)."""


def _marks(event: yaml.Event) -> tuple[Any, Any]:
    return event.start_mark, event.end_mark  # libyaml's marks: the same fields as PyYAML's (typed apart)


def _at(file: str, event: yaml.Event, message: str) -> Problem:
    m = event.start_mark
    return Problem(file, m.line + 1, m.column + 1, one_line(message)) if m else Problem(file, 1, 1, one_line(message))


def load_yaml(text: str, file: str = "<string>", limits: Limits = DEFAULT_LIMITS) -> Located:
    """Parse one YAML document; raise ValidationFailed with positions on any syntax problem or limit."""
    try:
        root = _compose(text, file, limits)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "invalid YAML"
        raise ValidationFailed([Problem(file, line, col, one_line(f"YAML syntax: {what}"))]) from None
    except yaml.YAMLError as exc:  # reader errors (bad bytes) carry no mark
        raise ValidationFailed([Problem(file, 1, 1, one_line(f"YAML syntax: {exc}"))]) from None
    if root is None:
        return Located(file, None, {(): (1, 1)})
    builder = _Builder(file, limits.yaml_nodes)
    try:
        value = builder.values(root)
    except _TooBig as big:
        m = big.node.start_mark
        msg = f"document has more than {limits.yaml_nodes:,} values, aliases expanded (limits.yaml_nodes)"
        raise ValidationFailed([Problem(file, m.line + 1, m.column + 1, msg)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise ValidationFailed([Problem(file, line, col, one_line(f"YAML: {exc.problem or exc}"))]) from None
    except RecursionError:
        raise ValidationFailed([Problem(file, 1, 1, "YAML nesting is too deep")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. timestamps out of range
        raise ValidationFailed([Problem(file, 1, 1, one_line(f"YAML value: {exc}"))]) from None
    if builder.problems:
        raise ValidationFailed(builder.problems)
    return Located(file, value, builder.positions)


def read_document(path: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """The text of ``path``, reading at most one byte past the limit (``/dev/zero`` is refused, not
    read forever)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.document_bytes + 1)
    except FileNotFoundError:
        raise ValidationFailed([Problem(path, 1, 1, "file not found")]) from None
    except OSError as exc:
        raise ValidationFailed([Problem(path, 1, 1, f"cannot read file: {exc.strerror or exc}")]) from None
    if len(data) > limits.document_bytes:
        raise _too_large(path, "or more", limits)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValidationFailed([Problem(path, line, column, "cannot read file: not UTF-8 text")]) from None


def load_yaml_file(path: str, limits: Limits = DEFAULT_LIMITS) -> Located:
    return load_yaml(read_document(path, limits), path, limits)

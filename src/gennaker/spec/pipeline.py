"""Load and validate a pipeline document, reporting every problem with its file:line:column."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from gennaker.errors import Problem, ValidationFailed
from gennaker.spec import expressions, shell
from gennaker.spec.limits import DEFAULT_LIMITS, Limits
from gennaker.spec.models import Pipeline, PipelineHeader, StageConfig
from gennaker.spec.validation import pydantic_problems
from gennaker.spec.yamlload import Located, gc_paused, load_yaml, read_document

StageSchemas = Mapping[str, type[StageConfig]]


def load_pipeline(path: str, schemas: StageSchemas, limits: Limits = DEFAULT_LIMITS) -> Pipeline:
    text = read_document(path, limits)
    return _load(text, path, schemas, limits)


def pipeline_from_text(
    text: str, schemas: StageSchemas, file: str = "<pipeline>", limits: Limits = DEFAULT_LIMITS
) -> Pipeline:
    return _load(text, file, schemas, limits)


# A megabyte document costs about a hundred megabytes while it is parsed. Parsing holds the GIL, so
# more at once is no faster; bounding them bounds the memory a burst of submissions can take.
_PARSING = threading.BoundedSemaphore(2)


def _load(text: str, file: str, schemas: StageSchemas, limits: Limits) -> Pipeline:
    with _PARSING, gc_paused():
        try:
            return validate_pipeline(load_yaml(text, file, limits), schemas, text=text, limits=limits)
        except ValidationFailed as exc:
            # dropped here, the traceback's frames free the document's objects before collection resumes
            failed = exc.with_traceback(None)
            failed.__context__ = None
    raise failed


def validate_pipeline(
    doc: Located, schemas: StageSchemas, text: str | None = None, limits: Limits = DEFAULT_LIMITS
) -> Pipeline:
    if not isinstance(doc.value, dict):
        raise ValidationFailed([doc.problem((), "a pipeline must be a mapping with name, application and stages")])
    for key, most in (("stages", limits.stages), ("parameters", limits.parameters)):
        # counted before any model sees them (the header's duplicate check is quadratic in parameters)
        raw = doc.value.get(key)
        if isinstance(raw, list) and len(raw) > most:
            msg = f"a pipeline may have at most {most:,} {key}, this one has {len(raw):,} (limits.{key})"
            raise ValidationFailed([doc.problem((key,), msg)])
    problems: list[Problem] = []
    try:
        header = PipelineHeader.model_validate(doc.value)
    except ValidationError as exc:
        problems.extend(pydantic_problems(exc, doc))
        header = None
    raw_stages = doc.value.get("stages")
    stages = _stages(doc, raw_stages if isinstance(raw_stages, list) else [], schemas, problems)
    params = {p.name for p in header.parameters} if header else _param_names(doc.value.get("parameters"))
    graph = _raw_graph(raw_stages if isinstance(raw_stages, list) else [])
    problems.extend(_graph_problems(doc, graph))
    problems.extend(_expression_problems(doc, graph, params, schemas))
    problems.extend(_shell_problems(doc, raw_stages if isinstance(raw_stages, list) else [], schemas))
    if problems or header is None:
        problems.sort(key=lambda p: (p.line, p.column))
        raise ValidationFailed(problems)
    return Pipeline(
        name=header.name,
        application=header.application,
        description=header.description,
        parameters=header.parameters,
        concurrency=header.concurrency,
        stages=[s for _, s in stages],
        notifications=header.notifications,
        triggers=header.triggers,
        source=doc.file,
        text=text,
    )


def _param_names(raw: Any) -> set[str]:
    if not isinstance(raw, list):
        return set()
    return {str(p["name"]) for p in raw if isinstance(p, dict) and "name" in p}


def _stages(
    doc: Located, raw: list[Any], schemas: StageSchemas, problems: list[Problem]
) -> list[tuple[int, StageConfig]]:
    out = []
    for i, item in enumerate(raw):
        where = ("stages", i)
        if not isinstance(item, dict):
            problems.append(doc.problem(where, "a stage must be a mapping with at least id and type"))
            continue
        kind = item.get("type")
        if not isinstance(kind, str):
            problems.append(doc.problem(where, "stage has no 'type'" if kind is None else "'type' must be text"))
            continue
        schema = schemas.get(kind)
        if schema is None:
            known = ", ".join(sorted(schemas))
            problems.append(doc.problem((*where, "type"), f"unknown stage type '{kind}' (known: {known})"))
            continue
        try:
            out.append((i, schema.model_validate(item)))
        except ValidationError as exc:
            found = pydantic_problems(exc, doc, prefix=where)
            problems.extend(found)
            if not found:  # every error was in a ${...} field: checked again at run time
                out.append((i, schema.model_construct(**item)))
    return out


def _raw_graph(raw: list[Any]) -> list[tuple[int, str, list[str]]]:
    """(index, id, requires) of every stage with a usable id, valid or not, so that graph problems are
    reported even for stages that have other problems too."""
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            req = item.get("requires") or []
            out.append((i, item["id"], [r for r in req if isinstance(r, str)] if isinstance(req, list) else []))
    return out


def _graph_problems(doc: Located, stages: list[tuple[int, str, list[str]]]) -> list[Problem]:
    problems = []
    seen: dict[str, int] = {}
    for i, sid, _ in stages:
        if sid in seen:
            problems.append(
                doc.problem(("stages", i, "id"), f"duplicate stage id '{sid}' (first at stage {seen[sid] + 1})")
            )
        else:
            seen[sid] = i
    for i, sid, requires in stages:
        for j, req in enumerate(requires):
            if req == sid:
                problems.append(doc.problem(("stages", i, "requires", j), f"stage '{sid}' requires itself"))
            elif req not in seen:
                problems.append(
                    doc.problem(("stages", i, "requires", j), f"stage '{sid}' requires unknown stage '{req}'")
                )
    if problems:
        return problems
    cycle = _find_cycle({sid: requires for _, sid, requires in stages})
    if cycle:
        first = seen[cycle[0]]
        problems.append(doc.problem(("stages", first, "requires"), "requires form a cycle: " + " -> ".join(cycle)))
    return problems


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for start in graph:
        if state.get(start):
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        path: list[str] = []
        while stack:
            node, idx = stack.pop()
            if idx == 0:
                state[node] = 1
                path.append(node)
            deps = graph.get(node, [])
            if idx < len(deps):
                stack.append((node, idx + 1))
                nxt = deps[idx]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None


def upstream(graph: dict[str, list[str]], stage_id: str) -> set[str]:
    """Every stage that ``stage_id`` transitively requires."""
    seen: set[str] = set()
    todo = list(graph.get(stage_id, []))
    while todo:
        s = todo.pop()
        if s not in seen:
            seen.add(s)
            todo.extend(graph.get(s, []))
    return seen


def _expression_problems(
    doc: Located, graph: list[tuple[int, str, list[str]]], params: set[str], schemas: StageSchemas
) -> list[Problem]:
    """Check every ``${...}`` of every stage (valid or not, so all problems show at once)."""
    problems = []
    ids = {sid for _, sid, _ in graph}
    requires = {sid: req for _, sid, req in graph}
    raw_stages = doc.value.get("stages", [])
    for i, sid, _ in graph:
        before: set[str] | None = None  # computed only for a stage that reads other stages
        schema = schemas.get(str(raw_stages[i].get("type")))
        templates = set(getattr(schema, "template_fields", ()))
        for path, value in _strings(raw_stages[i], ("stages", i)):
            template = len(path) > 2 and path[2] in templates
            pieces, open_at = expressions.scan(value)
            if open_at is not None:
                near = value[open_at : open_at + 30] + ("..." if len(value) > open_at + 30 else "")
                problems.append(
                    doc.problem(path, f"unterminated expression {near!r} at character {open_at + 1} (missing '}}')")
                )
            for ref in (p.path for p in pieces if isinstance(p, expressions.Ref)):
                msg = expressions.check_reference(ref, ids, params, template)
                parts = ref.split(".")
                if msg is None and parts[0] == "stages":
                    before = upstream(requires, sid) if before is None else before
                    if parts[1] not in before:
                        msg = f"${{{ref}}}: stage '{parts[1]}' is not upstream of '{sid}' (add it to requires)"
                if msg:
                    problems.append(doc.problem(path, msg))
        when = raw_stages[i].get("when")
        if isinstance(when, str):
            msg = expressions.check_condition(when)
            if msg:
                problems.append(doc.problem(("stages", i, "when"), msg))
    return problems


def _shell_problems(doc: Located, raw_stages: list[Any], schemas: StageSchemas) -> list[Problem]:
    """A value that could not be quoted where it stands in a shell command (``gennaker.spec.shell``)."""
    found: list[Problem] = []
    for i, raw in enumerate(raw_stages):
        schema = schemas.get(str(raw.get("type"))) if isinstance(raw, dict) else None
        for field in getattr(schema, "shell_fields", ()):
            if isinstance(raw.get(field), str):
                found.extend(doc.problem(("stages", i, field), msg) for msg in shell.problems(raw[field]))
    return found


def _strings(value: Any, path: tuple[str | int, ...]) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every text in ``value`` with its path, depth first (a stack, not recursion: linear at any depth)."""
    todo: list[tuple[tuple[str | int, ...], Any]] = [(path, value)]
    while todo:
        where, v = todo.pop()
        if isinstance(v, str):
            yield where, v
        elif isinstance(v, dict):
            todo.extend(((*where, k), x) for k, x in reversed(v.items()))
        elif isinstance(v, list):
            todo.extend(((*where, i), x) for i, x in reversed(list(enumerate(v))))

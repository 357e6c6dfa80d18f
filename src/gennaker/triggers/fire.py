"""Start a pipeline for a trigger exactly once, and remember every delivery.

A firing's key (``git:shop-deploy:<delivery id>``, ``cron:nightly:0:1764558000``) is written in the
same transaction as the execution it starts; a second firing with that key — a redelivered push, a
second server replica running the same schedule — finds the key taken and starts nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from gennaker.engine.model import new_id
from gennaker.engine.operations import start_execution_in
from gennaker.errors import Problem, ValidationFailed
from gennaker.spec.limits import DEFAULT_LIMITS, Limits
from gennaker.spec.models import Pipeline
from gennaker.spec.triggers import PipelineTrigger, Trigger
from gennaker.spec.yamlload import load_yaml
from gennaker.store import hot
from gennaker.store.db import Database
from gennaker.store.tables import pipelines
from gennaker.triggers.tables import trigger_deliveries, trigger_firings

log = logging.getLogger("gennaker.triggers")

MAX_SUMMARY = 500  # characters of a commit message or author kept with a delivery

Parse = Callable[[str, str], Pipeline]  # (text, file name) -> a validated pipeline


# read at every execution's end (in the transaction that ends it): prebuilt, run on the driver
_REGISTERED = select(pipelines.c.name, pipelines.c.updated_at).where(pipelines.c.registered.is_(True))
_TEXTS = select(pipelines.c.name, pipelines.c.text, pipelines.c.updated_at).where(
    pipelines.c.name.in_(bindparam("names", expanding=True))
)


class Catalog:
    """The registered pipelines and their triggers, parsed once per version of each document."""

    def __init__(self, parse: Parse):
        self.parse = parse
        self._lock = threading.Lock()
        self._parsed: dict[str, tuple[float, Pipeline | None]] = {}

    def registered(self, conn: Connection) -> list[Pipeline]:
        """Every registered pipeline. Read on every execution's end (pipeline triggers): the documents'
        texts are read only for versions not parsed yet, not all of them each time."""
        rows = hot.execute(conn, _REGISTERED, {}).all()
        with self._lock:
            unseen = [r.name for r in rows if (c := self._parsed.get(r.name)) is None or c[0] != r.updated_at]
        fresh = {r.name: r for r in conn.execute(_TEXTS, {"names": unseen})} if unseen else {}
        found = []
        with self._lock:
            for r in rows:
                row = fresh.get(r.name, r)  # a version newer than listed may be read: kept under its own time
                cached = self._parsed.get(r.name)
                if r.name not in fresh and (cached is None or cached[0] != row.updated_at):
                    # another thread replaced the version meanwhile: read this one's text after all
                    row = conn.execute(_TEXTS, {"names": [r.name]}).first() or r
                found.append(self._version(r.name, row.updated_at, partial(getattr, row, "text", None)))
        return [p for p in found if p is not None]

    def one(self, conn: Connection, name: str) -> Pipeline | None:
        """One registered pipeline (a firing needs only its own: one indexed read, not all of them)."""
        row = conn.execute(
            select(pipelines.c.text, pipelines.c.updated_at).where(
                pipelines.c.name == name, pipelines.c.registered.is_(True)
            )
        ).first()
        if row is None:
            return None
        with self._lock:
            return self._version(name, row.updated_at, lambda: row.text)

    def _version(self, name: str, updated_at: float, text: Callable[[], str | None]) -> Pipeline | None:
        """The parsed document of this version of ``name`` (parsed once; the caller holds the lock).
        ``text`` gives the document, asked only when this version is not parsed yet."""
        cached = self._parsed.get(name)
        if cached is None or cached[0] != updated_at:
            cached = (updated_at, self._parse(name, text()))
            self._parsed[name] = cached
        return cached[1]

    def _parse(self, name: str, text: str | None) -> Pipeline | None:
        if not text:
            return None
        try:
            return self.parse(text, f"<registered pipeline {name}>")
        except Exception:  # valid when registered; a config change may have made it invalid since
            log.exception("registered pipeline %s no longer loads", name)
            return None

    def with_triggers(self, conn: Connection, kind: str) -> list[tuple[Pipeline, int, Trigger]]:
        return [
            (p, i, t) for p in self.registered(conn) for i, t in enumerate(p.triggers) if t.type == kind and t.enabled
        ]


@dataclass(frozen=True)
class Fired:
    pipeline: str
    execution_id: str | None  # None: this key had fired before (a duplicate)

    def as_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "execution_id": self.execution_id}


def fire(
    conn: Connection,
    pipeline: Pipeline,
    *,
    key: str,
    kind: str,
    label: str,
    actor: str,
    params: dict[str, Any] | None = None,
    values: dict[str, Any] | None = None,
) -> Fired:
    """Start ``pipeline`` unless ``key`` fired before (then nothing, and ``execution_id`` is None)."""
    now = time.time()
    try:
        with conn.begin_nested():
            # the key first: a concurrent firing waits on it (PostgreSQL) or on the write lock (SQLite)
            conn.execute(
                insert(trigger_firings).values(
                    key=key[:300], pipeline=pipeline.name, execution_id="", fired_at=now, label=label[:300]
                )
            )
            execution_id = start_execution_in(
                conn, pipeline, params or {}, actor, trigger_type=kind, trigger={**(values or {}), "label": label}
            )
            conn.execute(
                update(trigger_firings).where(trigger_firings.c.key == key[:300]).values(execution_id=execution_id)
            )
    except IntegrityError:
        return Fired(pipeline.name, None)
    return Fired(pipeline.name, execution_id)


def record_delivery(
    db_or_conn: Database | Connection,
    *,
    kind: str,
    source: str,
    outcome: str,
    http_status: int | None,
    reason: str | None = None,
    delivery_key: str | None = None,
    summary: dict[str, Any] | None = None,
    fired: list[Fired] | None = None,
) -> str:
    """Every delivery is kept, a refused one too: the deliveries list is where a user finds out why a
    push started nothing."""
    row = {
        "id": new_id(),
        "received_at": time.time(),
        "kind": kind,
        "source": source[:200],
        "delivery_key": (delivery_key or None) and delivery_key[:200],
        "outcome": outcome,
        "http_status": http_status,
        "reason": reason[:1000] if reason else None,
        "summary": {k: (v[:MAX_SUMMARY] if isinstance(v, str) else v) for k, v in (summary or {}).items()},
        "executions": [f.as_dict() for f in fired or []],
    }
    if isinstance(db_or_conn, Database):
        with db_or_conn.begin() as conn:
            conn.execute(insert(trigger_deliveries).values(**row))
    else:
        db_or_conn.execute(insert(trigger_deliveries).values(**row))
    return str(row["id"])


def list_deliveries(
    conn: Connection, *, kind: str | None = None, outcome: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    q = select(trigger_deliveries).order_by(trigger_deliveries.c.received_at.desc()).limit(max(1, min(limit, 1000)))
    if kind:
        q = q.where(trigger_deliveries.c.kind == kind)
    if outcome:
        q = q.where(trigger_deliveries.c.outcome == outcome)
    return [dict(r._mapping) for r in conn.execute(q)]


def last_firings(conn: Connection) -> dict[str, dict[str, Any]]:
    """The newest firing of each pipeline (the pipelines list shows it beside the triggers)."""
    out: dict[str, dict[str, Any]] = {}
    rows = conn.execute(
        select(
            trigger_firings.c.pipeline,
            trigger_firings.c.label,
            trigger_firings.c.fired_at,
            trigger_firings.c.execution_id,
        )
        .order_by(trigger_firings.c.fired_at.desc())
        .limit(5000)
    )
    for r in rows:
        out.setdefault(r.pipeline, {"label": r.label, "at": r.fired_at, "execution_id": r.execution_id})
    return out


def refuse_cycles(conn: Connection, catalog: Catalog, pipeline: Pipeline, limits: Limits = DEFAULT_LIMITS) -> None:
    """Registering ``pipeline`` must not close a loop of pipeline triggers (a → b → a would start
    executions forever): refused with the trigger's line and column."""
    # parent -> children that start after it, with this document in place of its registered version
    after: dict[str, set[str]] = {}
    for p in [x for x in catalog.registered(conn) if x.name != pipeline.name] + [pipeline]:
        for t in p.triggers:
            if isinstance(t, PipelineTrigger):
                after.setdefault(t.pipeline, set()).add(p.name)
    # a loop through a trigger: from this pipeline, following "starts after", back to that trigger's parent
    loops = [
        (i, " → ".join([t.pipeline, *path]))
        for i, t in enumerate(pipeline.triggers)
        if isinstance(t, PipelineTrigger) and (path := _path(after, pipeline.name, t.pipeline)) is not None
    ]
    if not loops:
        return
    file = pipeline.source or "<pipeline>"
    doc = load_yaml(pipeline.text, file, limits) if pipeline.text else None
    raise ValidationFailed(
        [
            doc.problem(("triggers", i, "pipeline"), f"pipeline triggers would loop: {loop}")
            if doc is not None
            else Problem(file, 1, 1, f"pipeline triggers would loop: {loop}")
            for i, loop in loops
        ]
    )


def _path(after: dict[str, set[str]], start: str, goal: str) -> list[str] | None:
    """The pipelines from ``start`` to ``goal`` along "starts after" edges, or None (iterative: a long
    chain of registered pipelines is no recursion depth)."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen = {start}
    while stack:
        node, path = stack.pop()
        if node == goal:
            return path
        for nxt in sorted(after.get(node, ())):
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def describe(trigger: Trigger) -> str:
    """One line for people: what starts the pipeline."""
    t: Any = trigger
    if t.type == "git":
        return f"push to {t.repository} ({t.provider}){' on ' + ', '.join(t.branches) if t.branches else ''}"
    if t.type == "cron":
        return f"cron {t.schedule} ({t.timezone})"
    if t.type == "pipeline":
        return f"after {t.pipeline} ({', '.join(t.status)})"
    if t.type == "image":
        return f"new image {t.image_name} in {t.account}/{t.region}"
    return f"webhook from {t.source}"


def with_triggers(conn: Connection, catalog: Catalog, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pipelines list's rows, each with its triggers and the last time one fired."""
    by_name = {p.name: p for p in catalog.registered(conn)}
    fired = last_firings(conn)
    for row in rows:
        p = by_name.get(row["name"])
        row["triggers"] = [describe(t) + ("" if t.enabled else " (disabled)") for t in p.triggers] if p else []
        row["last_fired"] = fired.get(row["name"])
    return rows

"""The console's read queries. Every list is bounded and indexed: one query per pipeline group (not
per execution), and the stages of all listed executions in one more (``views.stage_summaries``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select

from gennaker.cloud import naming
from gennaker.engine import views
from gennaker.engine.operations import TASK_PREFIX
from gennaker.store.tables import executions, pipelines, stages

AWAITING = "AWAITING_JUDGMENT"  # a console status: RUNNING or PAUSED with a judgment waiting
STATUSES = ["RUNNING", AWAITING, "SUCCEEDED", "FAILED", "TERMINAL", "CANCELED", "PAUSED", "NOT_STARTED"]


@dataclass
class Filters:
    search: str = ""
    pipelines: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    group: bool = True
    per_group: int = 5
    page: int = 1
    page_size: int = 25

    def query_string(self, **overrides: Any) -> str:
        from urllib.parse import urlencode

        d = {
            "q": self.search,
            "pipeline": self.pipelines,
            "status": self.statuses,
            "group": "1" if self.group else "0",
            "n": self.per_group,
            "page": self.page,
        }
        d.update(overrides)
        return urlencode(
            [(k, x) for k, v in d.items() for x in (v if isinstance(v, list) else [v]) if x not in ("", None)]
        )


def applications(conn: Connection) -> list[dict[str, Any]]:
    counts: dict[str, int] = dict(
        conn.execute(select(executions.c.application, func.count()).group_by(executions.c.application)).all()
    )
    pipes: dict[str, int] = dict(
        conn.execute(select(pipelines.c.application, func.count()).group_by(pipelines.c.application)).all()
    )
    names = sorted(set(counts) | set(pipes))
    return [{"name": n, "executions": int(counts.get(n, 0)), "pipelines": int(pipes.get(n, 0))} for n in names]


def pipeline_names(conn: Connection, application: str) -> list[str]:
    return list(
        conn.execute(
            select(pipelines.c.name).where(pipelines.c.application == application).order_by(pipelines.c.name)
        ).scalars()
    )


def pipeline_texts(conn: Connection, application: str) -> dict[str, tuple[str | None, str | None]]:
    rows = conn.execute(
        select(pipelines.c.name, pipelines.c.text, pipelines.c.source).where(pipelines.c.application == application)
    ).all()
    return {r.name: (r.text, r.source) for r in rows}


def _status_clause(statuses: list[str]) -> Any:
    plain = [s for s in statuses if s != AWAITING]
    clauses: list[Any] = []
    if plain:
        clauses.append(executions.c.status.in_(plain))
    if AWAITING in statuses:
        # Correlated on the (execution_id, status) index, and only for the few unfinished executions.
        # The judgment may be a manual judgment's or any judgeable stage's (a paused rolling deploy).
        clauses.append(
            and_(
                executions.c.status.in_(["RUNNING", "PAUSED"]),
                exists(
                    select(stages.c.stage_id).where(
                        stages.c.execution_id == executions.c.id, views.awaiting_judgment_clause()
                    )
                ),
            )
        )
    return or_(*clauses)


def _select(application: str, f: Filters) -> Any:
    # Tasks (operator actions, pipeline "task:<type>") are executions too, but belong on the TASKS tab.
    q = select(*views._SUMMARY_COLS).where(
        executions.c.application == application, ~executions.c.pipeline.startswith(TASK_PREFIX)
    )
    if f.statuses:
        q = q.where(_status_clause(f.statuses))
    if f.search:
        q = q.where(
            or_(
                executions.c.pipeline.contains(f.search, autoescape=True),
                executions.c.id.startswith(f.search, autoescape=True),
            )
        )
    return q.order_by(executions.c.created_at.desc())


def execution_groups(conn: Connection, application: str, f: Filters) -> list[dict[str, Any]]:
    """Executions grouped by pipeline (the newest ``per_group`` of each), or one flat page."""
    names = pipeline_names(conn, application)
    shown = [n for n in names if not f.pipelines or n in f.pipelines]
    if f.search:
        shown = [n for n in shown if f.search.lower() in n.lower()] or shown
    groups: list[dict[str, Any]] = []
    if f.group:
        for name in shown:
            rows = conn.execute(_select(application, f).where(executions.c.pipeline == name).limit(f.per_group)).all()
            groups.append({"pipeline": name, "executions": [views._summary(r) for r in rows]})
    else:
        q = _select(application, f)
        if f.pipelines:
            q = q.where(executions.c.pipeline.in_(f.pipelines))
        rows = conn.execute(q.limit(f.page_size + 1).offset((f.page - 1) * f.page_size)).all()
        groups.append(
            {
                "pipeline": None,
                "executions": [views._summary(r) for r in rows[: f.page_size]],
                "more": len(rows) > f.page_size,
            }
        )
    ids = [e["id"] for g in groups for e in g["executions"]]
    summaries = views.stage_summaries(conn, ids)
    for g in groups:
        for e in g["executions"]:
            e["stages"] = summaries.get(e["id"], [])
            e["awaiting"] = any(s["awaiting_judgment"] for s in e["stages"])
    return groups


def tasks(conn: Connection, application: str, limit: int = 50) -> list[dict[str, Any]]:
    """The application's newest tasks, each with its one stage (type, target, status): two queries."""
    rows = views.list_executions(conn, application=application, kind="tasks", limit=limit)
    ids = [r["id"] for r in rows]
    stage_rows = (
        conn.execute(
            select(
                stages.c.execution_id,
                stages.c.stage_id,
                stages.c.type,
                stages.c.status,
                stages.c.config,
                stages.c.message,
            ).where(stages.c.execution_id.in_(ids))
        ).all()
        if ids
        else []
    )
    by_execution = {r.execution_id: r for r in stage_rows}
    for t in rows:
        st = by_execution.get(t["id"])
        cfg = (st.config if st is not None else None) or {}
        t["type"] = t["pipeline"].removeprefix(TASK_PREFIX)
        t["stage_id"] = st.stage_id if st is not None else None
        t["stage_status"] = st.status if st is not None else None
        t["stage_message"] = st.message if st is not None else None
        t["target"] = cfg.get("server_group") or _cluster(application, cfg)
        t["where"] = "/".join(x for x in (cfg.get("account"), cfg.get("region")) if x)
        t["capacity"] = cfg.get("capacity")
    return rows


def _cluster(application: str, cfg: dict[str, Any]) -> str:
    """The cluster a rollback task names by stack and detail."""
    try:
        return naming.cluster_name(application, cfg.get("stack") or "", cfg.get("detail") or "")
    except ValueError as exc:  # a label on a list: show what is wrong rather than fail the whole tab
        return f"? ({exc})"


def fingerprint(groups: list[dict[str, Any]]) -> str:
    """What the list shows, reduced to what changes: new executions and status changes."""
    parts = []
    for g in groups:
        for e in g["executions"]:
            parts.append(e["id"] + e["status"] + "".join(s["status"][:3] for s in e["stages"]))
    return "|".join(parts)

"""Which level a request needs, on which application: one table for the API and the console's forms
(console actions post to the API's paths without the ``/api`` prefix, so the same rules apply)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select

from gennaker.engine import views
from gennaker.ops.incidents.tables import incidents
from gennaker.store.db import Database
from gennaker.store.tables import executions, pipelines, stages
from gennaker.web.access import Principal


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    action: str | None  # None: the last path segment names the action
    level: str  # viewer, operator, admin, judge (see Principal.can_judge), user (any signed-in user)


def _r(pattern: str, level: str, action: str | None = None) -> Rule:
    return Rule(re.compile(pattern), action, level)


# Unsafe methods (POST, PUT, PATCH, DELETE). Paths are matched after removing a leading "/api".
MUTATING = [
    _r(r"^/executions/(?P<execution>[^/]+)/(cancel|pause|resume)$", "operator"),
    _r(r"^/executions/(?P<execution>[^/]+)/stages/(?P<stage>[^/]+)/(restart|skip)$", "operator"),
    _r(r"^/executions/(?P<execution>[^/]+)/stages/(?P<stage>[^/]+)/judge$", "judge", "judge"),
    _r(r"^/pipelines/(?P<pipeline>[^/]+)/executions$", "operator", "start"),
    # Pipelines run commands on the workers' hosts: changing them, or running an unregistered document,
    # is an administrator's act. Operators start registered pipelines.
    _r(r"^/pipelines$", "admin", "register_pipeline"),
    _r(r"^/executions$", "admin", "run_document"),
    _r(r"^/applications/(?P<application>[^/]+)/.+$", "operator", None),
    _r(r"^/incidents/(?P<incident>[^/]+)/(ack|resolve|note|assign|priority)$", "operator"),
    # rolls the incident's application's cluster back (api/incident_actions.py)
    _r(r"^/incidents/(?P<incident>[^/]+)/rollback$", "operator", "rollback"),
    # an operator of some application; the endpoint changes only the applications the caller operates
    _r(r"^/alarms/apply$", "operator", "alarms_apply"),
    _r(r"^/tokens(/.*)?$", "user", None),  # the endpoints decide whose tokens a caller may manage
    _r(r"^/(login|logout)$", "public", None),
    # Deliveries from GitHub, GitLab, CI systems and SNS carry no login: each endpoint authenticates
    # the delivery itself (an HMAC signature, a token, SNS's signing certificate) and refuses it if not.
    _r(r"^/hooks/.+$", "public", None),
]
# Anything unsafe not listed: admins only, so a new endpoint is closed until someone opens it here.
DEFAULT_MUTATING = Rule(re.compile(""), None, "admin")

# Reads naming an application in their path need a viewer role on it (a 403 there tells the caller
# nothing it did not type). Reads naming an execution or a pipeline are not decided here: the read
# models answer 404 for what lies outside the caller's applications (``gennaker.engine.views``), the
# same answer as for an id that does not exist, so ids reveal nothing about other applications.
READ_SCOPED = [
    re.compile(r"^/applications/(?P<application>[^/]+)"),
]


@dataclass
class Target:
    """What a request acts on, resolved from its path (and the database)."""

    action: str
    level: str
    application: str | None = None
    execution: str | None = None
    stage: str | None = None
    pipeline: str | None = None
    incident: str | None = None
    stage_roles: tuple[str, ...] = ()


def _strip(path: str) -> str:
    return path[4:] if path == "/api" or path.startswith("/api/") else path


def resolve_mutation(db: Database, path: str) -> Target:
    p = _strip(path)
    for rule in MUTATING:
        m = rule.pattern.match(p)
        if m:
            groups = {k: v for k, v in m.groupdict().items() if v}
            action = rule.action or p.rstrip("/").rsplit("/", 1)[-1]
            target = Target(
                action=action,
                level=rule.level,
                application=groups.get("application"),
                execution=groups.get("execution"),
                stage=groups.get("stage"),
                pipeline=groups.get("pipeline"),
                incident=groups.get("incident"),
            )
            _fill(db, target)
            return target
    return Target(action=p.strip("/").replace("/", "_") or "root", level=DEFAULT_MUTATING.level)


def conceal(target: Target, principal: Principal) -> tuple[int, str] | None:
    """The refusal of a mutation on an execution or pipeline (named by id) of an application the caller
    may not even read: the answer the same caller gets for an id that does not exist, so neither the
    id's existence nor its application shows. None: nothing to conceal (the usual rules decide)."""
    hidden = target.application and (target.execution or target.pipeline or target.incident)
    if not hidden or not principal.authenticated or principal.can("viewer", target.application):
        return None
    # With no such id the application is unknown: the request passes on the level alone (the route
    # then answers 404), or is refused without naming any application.
    if principal.can("operator" if target.level == "judge" else target.level, None):
        if target.execution:
            return 404, f"no execution '{target.execution}'"
        if target.incident:
            return 404, f"no incident '{target.incident}'"
        return 404, f"no pipeline named '{target.pipeline}' is registered"
    return 403, f"{principal.name} may not {target.action}: it needs the {target.level} role"


def resolve_read(db: Database, path: str) -> str | None:
    """The application a read is about, when its path names one thing (None for lists)."""
    p = _strip(path)
    for pattern in READ_SCOPED:
        m = pattern.match(p)
        if m:
            g = m.groupdict()
            target = Target(
                action="read",
                level="viewer",
                application=g.get("application"),
                execution=g.get("execution"),
                pipeline=g.get("pipeline"),
            )
            _fill(db, target)
            return target.application
    return None


def _fill(db: Database, t: Target) -> None:
    """Look up the application (and a judgment's roles): one indexed query."""
    if t.execution and t.stage and t.level == "judge":
        with db.read() as conn:
            row = conn.execute(
                select(executions.c.application, stages.c.config, stages.c.context)
                .join(stages, stages.c.execution_id == executions.c.id)
                .where(executions.c.id == t.execution, stages.c.stage_id == t.stage)
            ).first()
        if row is not None:
            t.application = row.application
            # the roles the stage asks for, read as operations.judge reads them (one read model)
            request = views.judgment_request({"context": row.context, "config": row.config}) or {}
            t.stage_roles = tuple(request.get("roles") or ())
    elif t.execution:
        with db.read() as conn:
            t.application = conn.execute(
                select(executions.c.application).where(executions.c.id == t.execution)
            ).scalar()
    elif t.incident:
        with db.read() as conn:
            t.application = conn.execute(select(incidents.c.application).where(incidents.c.id == t.incident)).scalar()
    elif t.pipeline:
        with db.read() as conn:
            t.application = conn.execute(select(pipelines.c.application).where(pipelines.c.name == t.pipeline)).scalar()

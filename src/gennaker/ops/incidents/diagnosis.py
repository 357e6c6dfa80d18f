"""Initial diagnosis of an incident, gathered from the database when it opens: which resources the
alarm names and whose they are, what ran against the application in the hours before, what changed
in the inventory, and which readiness findings already failed on those resources.

Everything is read from tables Gennaker already keeps (inventory snapshots, audits, executions and
their stages); nothing calls a cloud, so a diagnosis costs a few queries and works on simulated AWS.
Each part says when it could not be worked out (``status: "unknown"`` and the reason) rather than
coming back empty: an empty list means "looked, found nothing".

``diagnose(conn, ...)`` works on any alarm; ``record_diagnosis(conn, incident)`` is what the intake
calls in the transaction that opens an incident: it diagnoses the incident's alarms (their
dimensions name the resources) as of its opening and keeps the result on its timeline, once (a
``diagnosis`` event whose details are ``Diagnosis.to_dict()``). ``incident_diagnosis`` reads it back,
or gathers it now for an incident opened without one. They only read (and write that one event),
and raise nothing but database errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, desc, or_, select

from gennaker.cloud import naming
from gennaker.cloud.provider import TAG_APPLICATION, TAG_CLUSTER
from gennaker.engine.views import capabilities
from gennaker.ops.findings import SEVERITY_RANK
from gennaker.ops.incidents import store
from gennaker.ops.tables import ops_audits, ops_resources, ops_snapshots
from gennaker.store.tables import executions, stages

DEFAULT_LOOKBACK_HOURS = 6.0
MAX_LOOKBACK_HOURS = 7 * 24.0
MAX_RESOURCES = 50  # references an alarm may name (CloudWatch allows 30 dimensions)
MAX_REF = 2048
MAX_EXECUTIONS = 50
MAX_CHANGES = 50  # per list (added, removed, changed); the total is kept beside it
MAX_FINDINGS = 50
WORKLOAD_TAGS = ("Application", "Name")  # ops.workload_tags' default (OpsSettings)

# The console's pages for what a diagnosis names (there is no page per cloud resource).
RESOURCE_PAGES = {
    "autoscaling.group": "clusters",
    "ec2.instance": "clusters",
    "elbv2.load_balancer": "loadbalancers",
    "elbv2.target_group": "loadbalancers",
    "elb.load_balancer": "loadbalancers",
    "ec2.security_group": "securitygroups",
}


def execution_link(execution_id: str) -> str:
    return f"/executions/{execution_id}"


# ---- the shapes ------------------------------------------------------------------------------------


@dataclass
class AffectedResource:
    ref: str  # as the alarm named it: an ARN, an id, or a dimension ``Name=Value``
    found: bool
    type: str | None = None
    account: str | None = None
    region: str | None = None
    id: str | None = None
    arn: str | None = None
    name: str | None = None
    application: str | None = None
    cluster: str | None = None  # the cluster a server group (or its instance) belongs to
    link: str | None = None


@dataclass
class Deploy:
    """A stage that changed which server group of a cluster serves (its type ``deploys``)."""

    execution_id: str
    stage_id: str
    name: str
    status: str
    cluster: str | None
    account: str | None
    region: str | None
    server_group: str | None
    previous_server_group: str | None
    strategy: str | None
    started_at: float | None
    ended_at: float | None
    minutes_before: float | None  # from the deploy's end (or start, while it ran) to the alarm
    rolled_back: bool
    link: str


@dataclass
class ExecutionRef:
    id: str
    pipeline: str
    application: str
    status: str
    is_task: bool  # an operator action (resize, rollback, ...) rather than a pipeline
    user: str | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    link: str


@dataclass
class Part:
    """One part of the diagnosis: ``ok`` with what was found, or ``unknown`` with the reason."""

    status: str = "ok"
    reason: str | None = None

    def unknown(self, reason: str) -> None:
        self.status, self.reason = "unknown", reason


@dataclass
class Activity(Part):
    executions: list[ExecutionRef] = field(default_factory=list)
    deploys: list[Deploy] = field(default_factory=list)  # newest first
    more: int = 0  # executions in the window beyond MAX_EXECUTIONS


@dataclass
class InventoryChanges(Part):
    from_snapshot: str | None = None
    to_snapshot: str | None = None
    from_at: float | None = None
    to_at: float | None = None
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0  # changes to the application's resources, before the lists were cut
    elsewhere: int = 0  # changes to other resources of the same accounts (not listed)


@dataclass
class Findings(Part):
    audit_id: str | None = None
    audited_at: float | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    more: int = 0
    link: str | None = None


@dataclass
class Diagnosis:
    at: float
    lookback_hours: float
    application: str | None
    resources: list[AffectedResource]
    clusters: list[dict[str, str]]  # {cluster, account, region}: what a rollback could act on
    activity: Activity
    changes_before: InventoryChanges  # what the last snapshot before the alarm changed
    changes_since: InventoryChanges  # from that snapshot to the newest one after it
    findings: Findings
    snapshot_id: str | None  # the snapshot the resources were looked up in
    summary: list[str]  # a few sentences for people (the console's and notifications' first lines)

    @property
    def suspect(self) -> Deploy | None:
        """The newest deploy of the window: the first thing to look at."""
        return self.activity.deploys[0] if self.activity.deploys else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---- the entry point -------------------------------------------------------------------------------


def diagnose(
    conn: Connection,
    *,
    resources: Sequence[str],
    application: str | None,
    at: float,
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
    workload_tags: Sequence[str] = WORKLOAD_TAGS,
) -> Diagnosis:
    """The diagnosis of an alarm on ``resources`` (ARNs, ids or ``Name=Value`` dimensions) at ``at``
    (epoch seconds). ``application`` is the incident's, when its rule or tags said; otherwise it is
    taken from the resources' tags when they all name the same one."""
    if not 0 < lookback_hours <= MAX_LOOKBACK_HOURS:
        raise ValueError(f"lookback_hours must be in (0, {MAX_LOOKBACK_HOURS:g}], not {lookback_hours}")
    refs = list(dict.fromkeys(r.strip()[:MAX_REF] for r in resources if r and r.strip()))[:MAX_RESOURCES]
    tags = tuple(workload_tags)
    baseline = _snapshot_at(conn, at)
    lookup = baseline or _newest_snapshot(conn)
    affected = _affected(conn, lookup.id if lookup else None, refs, tags)
    if application is None:
        named = {r.application for r in affected if r.application}
        application = named.pop() if len(named) == 1 else None
    for r in affected:
        if r.found and application and r.type in RESOURCE_PAGES:
            r.link = f"/applications/{application}/{RESOURCE_PAGES[r.type]}"
    activity = _activity(conn, application, at, lookback_hours)
    before, since = _changes(conn, baseline, at, application, affected, tags)
    findings = _findings(conn, application, affected, tags)
    clusters = _clusters(affected, activity, application)
    d = Diagnosis(
        at=at,
        lookback_hours=lookback_hours,
        application=application,
        resources=affected,
        clusters=clusters,
        activity=activity,
        changes_before=before,
        changes_since=since,
        findings=findings,
        snapshot_id=lookup.id if lookup else None,
        summary=[],
    )
    d.summary = _summary(d)
    return d


# ---- an incident's diagnosis ----------------------------------------------------------------------

DIAGNOSIS_EVENT = "diagnosis"  # the timeline event kind that keeps an incident's diagnosis


def alarm_resources(alarms: Iterable[Mapping[str, Any]]) -> list[str]:
    """The resources an incident's alarms name: their dimensions, as ``Name=Value``."""
    return [f"{k}={v}" for a in alarms for k, v in sorted((a.get("dimensions") or {}).items())]


def diagnose_incident(
    conn: Connection,
    incident: Mapping[str, Any],
    *,
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
    workload_tags: Sequence[str] = WORKLOAD_TAGS,
) -> Diagnosis:
    """The diagnosis of a stored incident as of the moment it opened."""
    return diagnose(
        conn,
        resources=alarm_resources(store.alarms_of(conn, incident["id"])),
        application=incident.get("application"),
        at=float(incident["created_at"]),
        lookback_hours=lookback_hours,
        workload_tags=workload_tags,
    )


def record_diagnosis(
    conn: Connection,
    incident: Mapping[str, Any],
    *,
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS,
    workload_tags: Sequence[str] = WORKLOAD_TAGS,
) -> Diagnosis:
    """Diagnose a just-opened incident and keep it on its timeline (written once per incident)."""
    d = diagnose_incident(conn, incident, lookback_hours=lookback_hours, workload_tags=workload_tags)
    store.add_event(
        conn,
        incident["id"],
        DIAGNOSIS_EVENT,
        " ".join(d.summary) or "initial diagnosis: nothing found",
        details=d.to_dict(),
        key=f"incident:{incident['id']}:diagnosis",
    )
    return d


def incident_diagnosis(
    conn: Connection,
    incident: Mapping[str, Any],
    timeline: Sequence[Mapping[str, Any]],
    *,
    workload_tags: Sequence[str] = WORKLOAD_TAGS,
) -> tuple[dict[str, Any], bool]:
    """(the diagnosis as a dict, whether it was stored when the incident opened): the stored one, else
    one gathered now as of the incident's opening (an incident opened before diagnoses existed)."""
    stored = next((e for e in timeline if e.get("kind") == DIAGNOSIS_EVENT and e.get("details")), None)
    if stored is not None:
        return dict(stored["details"]), True
    return diagnose_incident(conn, incident, workload_tags=workload_tags).to_dict(), False


# ---- resources -------------------------------------------------------------------------------------


def _snapshot_at(conn: Connection, at: float) -> Any:
    """The newest snapshot taken at or before ``at``."""
    return conn.execute(
        select(ops_snapshots).where(ops_snapshots.c.created_at <= at).order_by(desc(ops_snapshots.c.created_at))
    ).first()


def _newest_snapshot(conn: Connection) -> Any:
    return conn.execute(select(ops_snapshots).order_by(desc(ops_snapshots.c.created_at)).limit(1)).first()


def _values(ref: str) -> list[str]:
    """What a reference may equal in the inventory: the ref, and for a dimension its value."""
    key, sep, value = ref.partition("=")
    return [ref, value] if sep and key and value and not ref.startswith("arn:") else [ref]


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def application_of(tags: Mapping[str, str], name: str | None, workload_tags: Iterable[str]) -> str | None:
    """The application a resource belongs to: Gennaker's own tag, else a workload tag (or the name)
    whose value parses as ``app-stack-detail`` (what the readiness view narrows findings by)."""
    if tags.get(TAG_APPLICATION):
        return tags[TAG_APPLICATION]
    for value in [*(tags.get(t) for t in workload_tags), name]:
        if value:
            return naming.parse(str(value)).application
    return None


def _affected(
    conn: Connection, snapshot_id: str | None, refs: list[str], tags: tuple[str, ...]
) -> list[AffectedResource]:
    if not refs:
        return []
    if snapshot_id is None:
        return [AffectedResource(ref=r, found=False) for r in refs]
    wanted = {v for r in refs for v in _values(r)}
    c = ops_resources.c
    # An ALB's LoadBalancer dimension (app/shop-web/123) and a target group's (targetgroup/tg/456)
    # are the ends of their ARNs.
    suffixes = [c.arn.like("%/" + _escape_like(v), escape="\\") for v in wanted if "/" in v]
    rows = conn.execute(
        select(ops_resources).where(
            c.snapshot_id == snapshot_id,
            or_(c.resource_id.in_(wanted), c.arn.in_(wanted), c.name.in_(wanted), *suffixes),
        )
    ).all()
    out = []
    for ref in refs:
        values = _values(ref)
        row = next(
            (
                r
                for r in rows
                if {r.resource_id, r.arn, r.name} & set(values)
                or any(r.arn and "/" in v and r.arn.endswith("/" + v) for v in values)
            ),
            None,
        )
        if row is None:
            out.append(AffectedResource(ref=ref, found=False))
            continue
        rtags: dict[str, str] = row.tags or {}
        cluster = rtags.get(TAG_CLUSTER) or (
            naming.cluster_of(row.name or row.resource_id) if row.type == "autoscaling.group" else None
        )
        out.append(
            AffectedResource(
                ref=ref,
                found=True,
                type=row.type,
                account=row.account,
                region=row.region,
                id=row.resource_id,
                arn=row.arn,
                name=row.name,
                application=application_of(rtags, row.name, tags),
                cluster=cluster,
            )
        )
    return out


# ---- executions and deploys ------------------------------------------------------------------------


def _activity(conn: Connection, application: str | None, at: float, lookback_hours: float) -> Activity:
    out = Activity()
    if application is None:
        out.unknown("no application: the alarm's resources are not in the inventory or carry no application tag")
        return out
    since = at - lookback_hours * 3600
    e = executions.c
    rows = conn.execute(
        select(e.id, e.pipeline, e.application, e.status, e.trigger, e.created_at, e.started_at, e.ended_at)
        .where(
            e.application == application,
            e.created_at <= at,
            or_(e.ended_at.is_(None), e.ended_at >= since),
        )
        .order_by(desc(e.created_at))
        .limit(MAX_EXECUTIONS + 1)
    ).all()
    out.more = max(0, len(rows) - MAX_EXECUTIONS)
    rows = rows[:MAX_EXECUTIONS]
    out.executions = [
        ExecutionRef(
            id=r.id,
            pipeline=r.pipeline,
            application=r.application,
            status=r.status,
            is_task=r.pipeline.startswith("task:"),
            user=(r.trigger or {}).get("user"),
            created_at=r.created_at,
            started_at=r.started_at,
            ended_at=r.ended_at,
            link=execution_link(r.id),
        )
        for r in rows
    ]
    ids = [r.id for r in rows]
    if not ids:
        return out
    s = stages.c
    stage_rows = conn.execute(
        select(s.execution_id, s.stage_id, s.name, s.status, s.config, s.context, s.outputs, s.started_at, s.ended_at)
        .where(s.execution_id.in_(ids), s.started_at.is_not(None), s.started_at <= at)
        .order_by(desc(s.started_at))
    ).all()
    for r in stage_rows:
        context = r.context or {}
        if not capabilities(context).deploys:  # what the stage's type declares, not its name
            continue
        out.deploys.append(_deploy(r, application, at))
    return out


def _deploy(r: Any, application: str, at: float) -> Deploy:
    context: dict[str, Any] = r.context or {}
    config: dict[str, Any] = context.get("resolved") or r.config or {}
    outputs: dict[str, Any] = r.outputs or {}
    cluster = outputs.get("cluster") or context.get("cluster")
    if not cluster:
        try:
            cluster = naming.cluster_name(application, str(config.get("stack") or ""), str(config.get("detail") or ""))
        except ValueError:
            cluster = None
    last = r.ended_at if r.ended_at is not None and r.ended_at <= at else r.started_at
    rollback = context.get("rollback")
    return Deploy(
        execution_id=r.execution_id,
        stage_id=r.stage_id,
        name=r.name,
        status=r.status,
        cluster=cluster,
        account=outputs.get("account") or config.get("account"),
        region=outputs.get("region") or config.get("region"),
        server_group=outputs.get("server_group") or context.get("server_group"),
        previous_server_group=outputs.get("previous_server_group") or context.get("previous_server_group"),
        strategy=config.get("strategy"),
        started_at=r.started_at,
        ended_at=r.ended_at,
        minutes_before=round((at - last) / 60, 1) if last is not None else None,
        rolled_back=isinstance(rollback, dict) and rollback.get("result") == "completed",
        link=f"/executions/{r.execution_id}/stages/{r.stage_id}",
    )


def _clusters(affected: list[AffectedResource], activity: Activity, application: str | None) -> list[dict[str, str]]:
    """The clusters a rollback could act on: those of the alarm's server groups, else those the
    window's deploys changed (newest first)."""
    seen: dict[tuple[str, str, str], None] = {}
    for r in affected:
        if r.cluster and r.account and r.region and naming.parse(r.cluster).application == application:
            seen[(r.cluster, r.account, r.region)] = None
    for d in activity.deploys:
        if d.cluster and d.account and d.region:
            seen[(d.cluster, d.account, d.region)] = None
    return [{"cluster": c, "account": a, "region": g} for c, a, g in seen]


# ---- inventory changes -----------------------------------------------------------------------------


def _scope(row: Any) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    return frozenset(row.types), {n: frozenset(a["regions"]) for n, a in row.accounts.items()}


def _failed(row: Any) -> set[tuple[str, str, str]]:
    return {(f["type"], f["account"], f["region"]) for f in row.failures or []}


def _resources(conn: Connection, snapshot_id: str) -> dict[tuple[str, str, str, str], Any]:
    rows = conn.execute(select(ops_resources).where(ops_resources.c.snapshot_id == snapshot_id)).all()
    return {(r.type, r.account, r.region, r.resource_id): r for r in rows}


def _changed_paths(a: Any, b: Any) -> list[str]:
    attrs = a.attributes or {}, b.attributes or {}
    paths = [k for k in sorted(set(attrs[0]) | set(attrs[1])) if attrs[0].get(k) != attrs[1].get(k)]
    ta, tb = a.tags or {}, b.tags or {}
    return paths + [f"tags.{t}" for t in sorted(set(ta) | set(tb)) if ta.get(t) != tb.get(t)]


def _ident(r: Any) -> dict[str, Any]:
    return {"type": r.type, "account": r.account, "region": r.region, "id": r.resource_id, "name": r.name}


def _compare(
    conn: Connection,
    old: Any,
    new: Any,
    application: str | None,
    affected: list[AffectedResource],
    tags: tuple[str, ...],
) -> InventoryChanges:
    """What changed from ``old`` to ``new`` on the application's (and the alarm's) resources. A
    collection that failed in either snapshot is not compared: its resources are unknown there."""
    out = InventoryChanges(from_snapshot=old.id, to_snapshot=new.id, from_at=old.created_at, to_at=new.created_at)
    skip = _failed(old) | _failed(new)
    before = {k: r for k, r in _resources(conn, old.id).items() if k[:3] not in skip}
    after = {k: r for k, r in _resources(conn, new.id).items() if k[:3] not in skip}
    refs = {(r.account, r.id) for r in affected if r.found}

    def mine(r: Any) -> bool:
        return (r.account, r.resource_id) in refs or (
            application is not None and application_of(r.tags or {}, r.name, tags) == application
        )

    lists: dict[str, list[dict[str, Any]]] = {"added": [], "removed": [], "changed": []}
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a is None:
            kind, entry = "added", _ident(b)
        elif b is None:
            kind, entry = "removed", _ident(a)
        else:
            paths = _changed_paths(a, b)
            if not paths:
                continue
            kind, entry = "changed", {**_ident(b), "changed": paths}
        if not mine(b if b is not None else a):
            out.elsewhere += 1
            continue
        out.total += 1
        if len(lists[kind]) < MAX_CHANGES:
            lists[kind].append(entry)
    out.added, out.removed, out.changed = lists["added"], lists["removed"], lists["changed"]
    return out


def _changes(
    conn: Connection,
    baseline: Any,
    at: float,
    application: str | None,
    affected: list[AffectedResource],
    tags: tuple[str, ...],
) -> tuple[InventoryChanges, InventoryChanges]:
    before, since = InventoryChanges(), InventoryChanges()
    if baseline is None:
        reason = "no inventory snapshot was taken before the alarm"
        before.unknown(reason)
        since.unknown(reason)
        return before, since
    s = ops_snapshots.c
    older = conn.execute(select(ops_snapshots).where(s.created_at < baseline.created_at).order_by(desc(s.created_at)))
    # Audits store partial snapshots: only one of the same scope compares (see ops.store.diff).
    previous = next((p for p in older if _scope(p) == _scope(baseline)), None)
    if previous is None:
        before.unknown(f"snapshot {baseline.id} has no earlier snapshot of the same scope to compare with")
        before.to_snapshot, before.to_at = baseline.id, baseline.created_at
    else:
        before = _compare(conn, previous, baseline, application, affected, tags)
    newer = conn.execute(select(ops_snapshots).where(s.created_at > baseline.created_at).order_by(desc(s.created_at)))
    latest = next((n for n in newer if _scope(n) == _scope(baseline)), None)
    if latest is None:
        since.unknown(
            f"no inventory snapshot of the same scope since {baseline.id} (collect one to see what changed since)"
        )
        since.from_snapshot, since.from_at = baseline.id, baseline.created_at
    else:
        since = _compare(conn, baseline, latest, application, affected, tags)
    return before, since


# ---- readiness findings ----------------------------------------------------------------------------


def _findings(
    conn: Connection, application: str | None, affected: list[AffectedResource], tags: tuple[str, ...]
) -> Findings:
    """Failing, unsuppressed findings of the latest audit on the alarm's resources and the rest of the
    application's resources in that audit's snapshot (those on the alarm's resources first)."""
    out = Findings()
    row = conn.execute(select(ops_audits).order_by(desc(ops_audits.c.created_at)).limit(1)).first()
    if row is None:
        out.unknown("no readiness audit has been run ('gennaker audit')")
        return out
    out.audit_id, out.audited_at = row.id, row.created_at
    if application:
        out.link = f"/applications/{application}/readiness"
    direct: set[tuple[str, str]] = set()
    for r in affected:
        if r.found and r.account:
            direct |= {(r.account, v) for v in (r.id, r.arn) if v}
    related = _application_refs(conn, row.snapshot_id, application, tags) if application else set()
    if not direct and not related:
        out.unknown("none of the alarm's resources is in the inventory, and no application is known")
        return out
    hits = []
    for f in (row.report or {}).get("findings", []):
        if f.get("status") != "FAIL" or f.get("suppressed"):
            continue
        key = (f.get("account"), f.get("resource_id"))
        workload = _names_workload(str(f.get("resource_id") or ""), application, tags)
        if key in direct or key in related or workload:
            hits.append({**f, "on_alarm_resource": key in direct})
    hits.sort(key=lambda f: (not f["on_alarm_resource"], -SEVERITY_RANK.get(f.get("severity", "info"), 0)))
    out.items, out.more = hits[:MAX_FINDINGS], max(0, len(hits) - MAX_FINDINGS)
    return out


def _application_refs(
    conn: Connection, snapshot_id: str | None, application: str, tags: tuple[str, ...]
) -> set[tuple[str, str]]:
    if snapshot_id is None:
        return set()
    c = ops_resources.c
    rows = conn.execute(select(c.account, c.resource_id, c.arn, c.name, c.tags).where(c.snapshot_id == snapshot_id))
    out: set[tuple[str, str]] = set()
    for r in rows:
        if application_of(r.tags or {}, r.name, tags) == application:
            out.add((r.account, r.resource_id))
            if r.arn:
                out.add((r.account, r.arn))
    return out


def _names_workload(resource_id: str, application: str | None, tags: Collection[str]) -> bool:
    """Findings about a workload name it ``Tag=value`` rather than by a resource."""
    key, sep, value = resource_id.partition("=")
    return bool(application and sep and key in tags and naming.parse(value).application == application)


# ---- for people ------------------------------------------------------------------------------------


def _summary(d: Diagnosis) -> list[str]:
    lines = []
    found = [r for r in d.resources if r.found]
    if d.resources:
        names = ", ".join(r.name or r.id or r.ref for r in found) or "none of them"
        lines.append(f"{len(d.resources)} resource(s) named by the alarm; in the inventory: {names}.")
    if d.application:
        lines.append(f"Application: {d.application}.")
    suspect = d.suspect
    if suspect is not None:
        group = f" ({suspect.server_group})" if suspect.server_group else ""
        when = f"{suspect.minutes_before:g} min before the alarm" if suspect.minutes_before is not None else ""
        lines.append(
            f"Deploy '{suspect.name}' of execution {suspect.execution_id} to {suspect.cluster}{group}, "
            f"{suspect.status}, {when}."
        )
    elif d.activity.status == "ok":
        lines.append(f"No deploy of {d.application} in the {d.lookback_hours:g} h before the alarm.")
    n = len(d.findings.items) + d.findings.more
    if n:
        lines.append(f"{n} failing readiness finding(s) on these resources.")
    changed = d.changes_before.total + d.changes_since.total
    if changed:
        lines.append(f"{changed} inventory change(s) to the application's resources around the alarm.")
    return lines

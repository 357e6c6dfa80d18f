"""Actions on an incident that reach beyond it: roll the application's cluster back to its previous
server group, as an operator task (the CLUSTERS tab's rollback, ``api.cloud.start_rollback_task``).

The cluster is the one the incident's diagnosis names (the alarm's server group, else the cluster
the window's last deploy changed) unless the caller names one of the application's clusters. The
request is kept on the incident's timeline before anything is done (an ``action`` event that also
settles two requests at once), then the task is started and recorded as an ``action`` event with its
id (or why it could not start). A second request while that task runs, or after it succeeded, is refused (409): a
double click or a retry does not roll the cluster back twice. The request itself is in the audit
log like every mutation (the access middleware writes it); the role is checked here too, on the
incident's application.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from gennaker.api.cloud import start_rollback_task
from gennaker.api.deps import get_actor
from gennaker.engine import views
from gennaker.errors import Conflict, Forbidden, GennakerError
from gennaker.ops.incidents import store as incidents
from gennaker.ops.incidents.diagnosis import incident_diagnosis
from gennaker.ops.incidents.tables import incidents as incident_rows
from gennaker.ops.settings import ops_settings
from gennaker.runtime import Runtime
from gennaker.store.tables import executions
from gennaker.web.access import Principal
from gennaker.web.deps import principal

router = APIRouter(prefix="/api", tags=["incidents"])
IncidentId = Annotated[str, Path(max_length=64)]
# The ``action`` of the timeline events of a rollback: asked for, then its task started (or not).
REQUESTED, ROLLBACK, REFUSED = "rollback_requested", "rollback", "rollback_refused"


class RollbackBody(BaseModel):
    """Which cluster to roll back; without one, the cluster the incident's diagnosis names."""

    model_config = ConfigDict(extra="forbid")

    cluster: str | None = Field(default=None, max_length=200)
    account: str | None = Field(default=None, max_length=100)
    region: str | None = Field(default=None, max_length=50)


@dataclass(frozen=True)
class Target:
    cluster: str
    account: str
    region: str | None


def rollback_target(incident: Mapping[str, Any], diagnosis: Mapping[str, Any], body: RollbackBody) -> Target:
    if body.cluster:
        if not body.account:
            raise Conflict("name the account of the cluster to roll back (and its region if it has several)")
        return Target(body.cluster, body.account, body.region)
    clusters = diagnosis.get("clusters") or []
    if not clusters:
        raise Conflict(
            f"incident {incident['id']}'s diagnosis names no cluster of {incident.get('application')}: "
            "name the cluster, account and region to roll back"
        )
    first = clusters[0]
    return Target(first["cluster"], first["account"], first.get("region"))


def earlier_rollback(conn: Any, timeline: Sequence[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(task, status) of an earlier rollback from this incident that is running or has succeeded: a
    repeated request must not roll the cluster back once more (further back than the operator
    meant). One that failed or was canceled may be tried again."""
    tasks = [
        str(e["details"]["task"])
        for e in timeline
        if e.get("kind") == "action"
        and (e.get("details") or {}).get("action") == ROLLBACK
        and (e.get("details") or {}).get("task")
    ]
    if not tasks:
        return None
    rows = conn.execute(select(executions.c.id, executions.c.status).where(executions.c.id.in_(tasks))).all()
    return next(((r.id, r.status) for r in rows if r.status == "SUCCEEDED" or not views.is_done(r.status)), None)


# A request whose task was neither started nor refused within this long was lost (its server died
# between the two): it no longer holds back a new request.
RESERVATION_LOST_AFTER = 300.0


def rollback_in_flight(timeline: Sequence[Mapping[str, Any]], now: float) -> bool:
    """Whether a rollback was requested and its task is neither started nor refused yet: a request at
    the same moment must not start a second one."""
    actions = [(e["at"], (e.get("details") or {}).get("action")) for e in timeline if e.get("kind") == "action"]
    requested = [at for at, action in actions if action == REQUESTED]
    settled = sum(1 for _, action in actions if action in (ROLLBACK, REFUSED))
    return len(requested) > settled and now - requested[-1] < RESERVATION_LOST_AFTER


def rollback_from_incident(runtime: Runtime, incident_id: str, me: Principal, body: RollbackBody) -> dict[str, Any]:
    """Start the rollback task and record it on the incident. Shared by the API and the console."""
    readable = me.readable()
    with runtime.db.read() as conn:
        incident = incidents.get(conn, incident_id, applications=readable)  # NotFound outside them
        timeline = incidents.timeline(conn, incident_id, applications=readable)
        application = incident.get("application")
        if not application:
            raise Conflict(f"incident {incident_id} belongs to no application: there is no cluster to roll back")
        if not me.can("operator", application):
            raise Forbidden(f"{me.name} may not roll back {application}: it needs the operator role on it")
        if incident.get("status") == "resolved":
            raise Conflict(f"incident {incident_id} is resolved: roll back from the CLUSTERS tab instead")
        workload_tags = ops_settings(runtime.config.ops).workload_tags
        diagnosis, _stored = incident_diagnosis(conn, incident, timeline, workload_tags=workload_tags)
    target = rollback_target(incident, diagnosis, body)
    where = {"cluster": target.cluster, "account": target.account, "region": target.region}
    # Reserve the rollback before acting, deciding under the incident's row lock on the timeline as it
    # is now: two requests at once (a double click) are decided one after the other, and the second
    # sees the first's reservation (or its task).
    with runtime.db.begin() as conn:
        conn.execute(update(incident_rows).where(incident_rows.c.id == incident_id).values(id=incident_id))
        timeline = incidents.timeline(conn, incident_id, applications=readable)
        if earlier := earlier_rollback(conn, timeline):
            task, status = earlier
            raise Conflict(
                f"rollback task {task} from this incident is {status}: one rollback per incident "
                "(roll back further from the CLUSTERS tab)"
            )
        if rollback_in_flight(timeline, time.time()):
            raise Conflict(f"another rollback from incident {incident_id} was requested at the same moment")
        attempt = sum(1 for e in timeline if (e.get("details") or {}).get("action") == REQUESTED)
        reserved = incidents.add_event(
            conn,
            incident_id,
            "action",
            f"rollback of {target.cluster} to its previous server group requested by {me.name}",
            actor=me.name,
            details={"action": REQUESTED, **where},
            key=f"incident:{incident_id}:rollback:{attempt}",
        )
    if not reserved:
        raise Conflict(f"another rollback from incident {incident_id} was requested at the same moment")
    try:
        task_id = start_rollback_task(runtime, application, target.cluster, target.account, target.region, me.name)
    except GennakerError as exc:
        with runtime.db.begin() as conn:
            said = f"rollback of {target.cluster} could not start: {exc}"
            incidents.add_event(conn, incident_id, "action", said, actor=me.name, details={"action": REFUSED, **where})
        raise
    details = {"action": ROLLBACK, "task": task_id, **where, "link": f"/executions/{task_id}"}
    with runtime.db.begin() as conn:
        text = f"rollback of {target.cluster} to its previous server group started by {me.name} (task {task_id})"
        incidents.add_event(conn, incident_id, "action", text, actor=me.name, details=details)
    return {"incident": incident_id, **details}


@router.post("/incidents/{incident_id}/rollback", status_code=202)
def incident_rollback(request: Request, incident_id: IncidentId, body: RollbackBody | None = None) -> dict[str, Any]:
    """Roll the incident's application's cluster back to its previous server group, as a task
    (follow it at /api/executions/{task}); recorded on the incident's timeline. Operator role."""
    me = principal(request)
    if me.auth == "off":  # --insecure-no-auth: callers name themselves
        me = Principal(name=get_actor(request), auth="off")
    return rollback_from_incident(request.app.state.runtime, incident_id, me, body or RollbackBody())

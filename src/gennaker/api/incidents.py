"""Incidents: the list (scoped to the caller's applications), one incident with its alarms and
timeline, and what people do to one: acknowledge, resolve, note, assign, set the priority.

The changes need the operator role on the incident's application (``web.rules``; audit-logged by
access control like every mutation); an incident outside the caller's applications is a 404, the
answer an unknown id gets.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from gennaker.api.deps import get_actor, get_runtime
from gennaker.api.scope import ReadableDep
from gennaker.ops.incidents import store
from gennaker.ops.incidents.settings import Priority
from gennaker.runtime import Runtime

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ActorDep = Annotated[str, Depends(get_actor)]
IncidentId = Annotated[str, Path(max_length=100)]


class IncidentOut(BaseModel):
    id: str
    title: str
    application: str | None
    status: str = Field(description="triggered, acknowledged or resolved.")
    priority: str = Field(description="P1 (highest) to P5.")
    dedup_key: str = Field(description="Alarms with this key merge into the open incident.")
    rule: str | None = Field(description="The incidents.rules entry that decided the priority.")
    escalation_policy: str | None
    escalation_loop: int
    escalation_level: int = Field(description="0-based: the last escalation level notified.")
    channels: list[str]
    assignee: str | None
    source: str = Field(description="sns, poll or condition: how the first alarm came in.")
    account: str | None
    region: str | None
    created_at: float
    updated_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    resolved_by: str | None = Field(description="A person, or 'auto' (every alarm OK for the quiet period).")
    alarms: dict[str, int] | None = Field(default=None, description="In lists: total alarms and those not OK.")


class AlarmOut(BaseModel):
    alarm: str
    alarm_key: str
    account: str | None
    region: str | None
    state: str
    reason: str | None
    changed_at: float
    dimensions: dict[str, str]


class EventOut(BaseModel):
    at: float
    kind: str = Field(description="triggered, merged, alarm, notified, escalated, acknowledged, resolved, note, ...")
    actor: str | None
    text: str
    details: dict[str, Any]
    deliveries: list[dict[str, Any]] | None = Field(default=None, description="notified: each channel's status.")


class IncidentDetail(IncidentOut):
    alarm_states: list[AlarmOut]
    timeline: list[EventOut]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResolveIn(_Body):
    note: str | None = Field(default=None, max_length=store.NOTE_MAX)


class NoteIn(_Body):
    text: str = Field(min_length=1, max_length=store.NOTE_MAX)


class AssignIn(_Body):
    assignee: str | None = Field(default=None, max_length=200, description="Empty or null: unassign.")


class PriorityIn(_Body):
    priority: Priority


def _detail(rt: Runtime, incident_id: str, readable: frozenset[str] | None) -> dict[str, Any]:
    with rt.db.read() as conn:
        inc = store.get(conn, incident_id, readable)
        inc["alarm_states"] = store.alarms_of(conn, incident_id)
        inc["timeline"] = store.timeline(conn, incident_id, readable)
    return inc


@router.get("", summary="Incidents, newest first", response_model=list[IncidentOut])
def list_incidents(
    rt: RuntimeDep,
    readable: ReadableDep,
    status: Annotated[
        str | None, Query(max_length=20, description="open, triggered, acknowledged or resolved.")
    ] = None,
    priority: Annotated[str | None, Query(max_length=2)] = None,
    application: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=store.LIST_MAX)] = 100,
) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        return store.list_incidents(
            conn, readable, status=status, priority=priority, application=application, limit=limit
        )


@router.get("/{incident_id}", summary="An incident, its alarms and its timeline", response_model=IncidentDetail)
def get_incident(incident_id: IncidentId, rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    return _detail(rt, incident_id, readable)


@router.post("/{incident_id}/ack", summary="Acknowledge (stops escalation)", response_model=IncidentDetail)
def ack(incident_id: IncidentId, rt: RuntimeDep, readable: ReadableDep, actor: ActorDep) -> dict[str, Any]:
    with rt.db.begin() as conn:
        store.ack(conn, incident_id, actor, readable)
    return _detail(rt, incident_id, readable)


@router.post("/{incident_id}/resolve", summary="Resolve", response_model=IncidentDetail)
def resolve(
    incident_id: IncidentId, rt: RuntimeDep, readable: ReadableDep, actor: ActorDep, body: ResolveIn | None = None
) -> dict[str, Any]:
    text = f"resolved by {actor}: {body.note}" if body and body.note else None
    with rt.db.begin() as conn:
        store.resolve(conn, incident_id, actor, text=text, applications=readable, link_base=rt.incidents.link_base)
    return _detail(rt, incident_id, readable)


@router.post("/{incident_id}/note", summary="Add a note to the timeline", response_model=IncidentDetail)
def note(
    incident_id: IncidentId, body: NoteIn, rt: RuntimeDep, readable: ReadableDep, actor: ActorDep
) -> dict[str, Any]:
    with rt.db.begin() as conn:
        store.note(conn, incident_id, actor, body.text, readable)
    return _detail(rt, incident_id, readable)


@router.post("/{incident_id}/assign", summary="Assign to a person (or unassign)", response_model=IncidentDetail)
def assign(
    incident_id: IncidentId, body: AssignIn, rt: RuntimeDep, readable: ReadableDep, actor: ActorDep
) -> dict[str, Any]:
    with rt.db.begin() as conn:
        store.assign(conn, incident_id, actor, body.assignee, readable)
    return _detail(rt, incident_id, readable)


@router.post("/{incident_id}/priority", summary="Change the priority", response_model=IncidentDetail)
def set_priority(
    incident_id: IncidentId, body: PriorityIn, rt: RuntimeDep, readable: ReadableDep, actor: ActorDep
) -> dict[str, Any]:
    with rt.db.begin() as conn:
        store.set_priority(conn, incident_id, actor, body.priority, readable)
    return _detail(rt, incident_id, readable)

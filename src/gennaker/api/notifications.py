"""Notifications over HTTP: the deliveries (scoped to the caller's applications; a channel test,
which belongs to no application, only an admin sees), one delivery with every attempt, and a test
notice sent to a channel.

Sending a test is a mutation: access control lets administrators do it and writes it to the audit
log (``web.rules``: an unlisted unsafe path is admin-only), and the notice names who asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from gennaker.api.deps import get_actor, get_runtime
from gennaker.api.scope import ReadableDep
from gennaker.engine import jobs
from gennaker.errors import NotFound
from gennaker.ops.notifications import get_delivery, list_deliveries
from gennaker.ops.notifications.channels import describe
from gennaker.runtime import Runtime

router = APIRouter(prefix="/api/notifications", tags=["notifications"])
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ActorDep = Annotated[str, Depends(get_actor)]
LIST_MAX = 1000


class DeliveryOut(BaseModel):
    id: str = Field(description="Also sent to the receiver (X-Gennaker-Delivery), the same on every retry.")
    key: str = Field(description="The notice's idempotency key: one delivery per key and channel.")
    channel: str
    event: str
    application: str | None
    status: str = Field(description="pending, sent or failed.")
    attempts: int
    last_error: str | None
    created_at: float
    updated_at: float
    sent_at: float | None
    notice: dict[str, Any]


class AttemptOut(BaseModel):
    attempt: int
    worker_id: str
    started_at: float
    finished_at: float | None
    outcome: str | None = Field(description="done, retry, failed, or abandoned (its worker stopped).")
    error: str | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]


class ChannelOut(BaseModel):
    name: str
    type: str
    target: str = Field(description="Where it goes; never a secret (a Slack webhook URL is shown masked).")


class TestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=100)


class TestOut(BaseModel):
    delivery_id: str
    channel: str


def _out(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "job_key"}


@router.get("/channels", summary="The channels declared in gennaker.yml", response_model=list[ChannelOut])
def channels(rt: RuntimeDep) -> list[dict[str, Any]]:
    return [
        {"name": name, **{k: str(v) for k, v in describe(ch).items() if k in ("type", "target")}}
        for name, ch in sorted(rt.config.notifications.channels.items())
    ]


@router.get("/deliveries", summary="Deliveries, newest first", response_model=list[DeliveryOut])
def deliveries(
    rt: RuntimeDep,
    readable: ReadableDep,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    status: Annotated[str | None, Query(pattern="^(pending|sent|failed)$")] = None,
    key: Annotated[str | None, Query(max_length=200, description="A notice's key (e.g. an incident's).")] = None,
    limit: Annotated[int, Query(ge=1, le=LIST_MAX)] = 100,
) -> list[dict[str, Any]]:
    with rt.db.read() as conn:
        rows = list_deliveries(conn, readable, channel=channel, status=status, key=key, limit=limit)
    return [_out(d) for d in rows]


@router.get("/deliveries/{delivery_id}", summary="A delivery and every attempt", response_model=DeliveryDetail)
def delivery(delivery_id: Annotated[str, Path(max_length=32)], rt: RuntimeDep, readable: ReadableDep) -> dict[str, Any]:
    with rt.db.read() as conn:
        d = get_delivery(conn, delivery_id)
        if d is None or (readable is not None and d["application"] not in readable):
            raise NotFound(f"no delivery '{delivery_id}'")  # outside the caller's applications: the same answer
        job = jobs.get(conn, d["job_key"]) if d["job_key"] else None
        d["attempt_log"] = jobs.attempts_of(conn, job["id"]) if job else []
    return _out(d)


@router.post("/test", summary="Send a test notice to a channel", response_model=TestOut, status_code=202)
def send_test(body: TestIn, rt: RuntimeDep, actor: ActorDep) -> dict[str, Any]:
    delivery_id = rt.notifications.send_test(body.channel, actor)
    return {"delivery_id": delivery_id, "channel": body.channel}

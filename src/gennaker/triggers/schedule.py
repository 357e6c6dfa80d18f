"""Triggers that fire from inside Gennaker: schedules, image polls and other pipelines ending.

All of them are durable jobs (``gennaker.engine.jobs``), so any number of workers on one database
share them and a scheduled time fires once:

- ``triggers.reconcile`` runs every ``RECONCILE_EVERY`` seconds (its key names the time slot, so every
  replica scheduling it schedules one job) and makes sure the next firing of each registered cron
  trigger, and a poll chain for each image trigger, exist as jobs.
- ``triggers.cron`` fires one scheduled time (key ``cron:<pipeline>:<index>:<epoch>``). A time found
  late after downtime fires once (``missed: run_once``) or not at all (``skip``).
- ``triggers.image`` looks for new images and schedules its next poll; the first poll only learns
  what exists (an image trigger fires on images that appear after it was registered).
- ``triggers.pipeline`` starts a pipeline after an execution of another ended with a listed status;
  the engine tells ``listener`` inside the transaction that ends the parent, so no ending is missed.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, select

from gennaker.engine import jobs
from gennaker.engine.events import ExecutionEvent, write_in_savepoint
from gennaker.engine.jobs import Done, Failed, Job, JobContext, JobHandler, NewJob
from gennaker.errors import GennakerError
from gennaker.spec.triggers import CronTrigger, ImageTrigger, PipelineTrigger
from gennaker.store.tables import executions, stages
from gennaker.triggers.fire import Catalog, fire, record_delivery

log = logging.getLogger("gennaker.triggers")

RECONCILE_EVERY = 30.0
MISSED_GRACE = 120.0  # a scheduled time claimed later than this after it was due was missed
SEEN_IMAGES = 200  # image ids an image poll chain remembers
ACTOR = "trigger"


def next_fire(schedule: str, timezone: str, after: float) -> float:
    """The first time ``schedule`` names strictly after ``after``, read in ``timezone`` (so "0 3 * * *"
    is 03:00 local on both sides of a daylight-saving change)."""
    from croniter import croniter

    start = datetime.fromtimestamp(after, ZoneInfo(timezone))
    return float(croniter(schedule, start).get_next(float))


def cron_key(pipeline: str, index: int, at: float) -> str:
    return f"cron:{pipeline}:{index}:{int(at)}"


def reconcile_key(now: float) -> str:
    return f"triggers.reconcile:{int(now // RECONCILE_EVERY)}"


def bootstrap(conn: Connection, now: float) -> None:
    """Each worker calls this when it starts: the reconcile chain exists once whoever starts it."""
    jobs.schedule(conn, "triggers.reconcile", reconcile_key(now), {}, now)


class TriggerJobs:
    """The handlers, bound to what they need (the catalog of registered pipelines and the providers)."""

    def __init__(self, catalog: Catalog, find_images: Any = None):
        self.catalog = catalog
        # (account, region, name pattern, tags) -> [(image_id, created epoch)], from the providers
        self.find_images = find_images

    def handlers(self) -> dict[str, JobHandler]:
        return {
            "triggers.reconcile": self.reconcile,
            "triggers.cron": self.cron,
            "triggers.image": self.image,
            "triggers.pipeline": self.after_pipeline,
        }

    # ---- reconcile ---------------------------------------------------------------------------------
    def reconcile(self, job: Job, ctx: JobContext) -> Done:
        now = ctx.now()
        then: list[NewJob] = [
            NewJob("triggers.reconcile", reconcile_key(now + RECONCILE_EVERY), {}, now + RECONCILE_EVERY)
        ]
        with ctx.db.read() as conn:
            found = self.catalog.registered(conn)
        for pipeline in found:
            for i, t in enumerate(pipeline.triggers):
                if not t.enabled:
                    continue
                if isinstance(t, CronTrigger):
                    at = next_fire(t.schedule, t.timezone, now)
                    payload = {"pipeline": pipeline.name, "index": i, "schedule": t.schedule, "timezone": t.timezone}
                    then.append(NewJob("triggers.cron", cron_key(pipeline.name, i, at), {**payload, "at": at}, at))
                elif isinstance(t, ImageTrigger):
                    payload = {"pipeline": pipeline.name, "index": i, "seen": None, "n": 0}
                    then.append(NewJob("triggers.image", f"image:{pipeline.name}:{i}:{_image_spec(t)}:0", payload, now))
        return Done(then=then)

    # ---- cron ----------------------------------------------------------------------------------------
    def cron(self, job: Job, ctx: JobContext) -> Done:
        p = job.payload
        name, index, at = str(p["pipeline"]), int(p["index"]), float(p["at"])
        with ctx.db.read() as conn:
            pipeline = self.catalog.one(conn, name)
        trigger = pipeline.triggers[index] if pipeline is not None and index < len(pipeline.triggers) else None
        if (
            pipeline is None
            or not isinstance(trigger, CronTrigger)
            or not trigger.enabled
            or (trigger.schedule, trigger.timezone) != (p["schedule"], p["timezone"])
        ):
            return Done(note="the schedule changed or the pipeline is gone: nothing fired")
        local = datetime.fromtimestamp(at, ZoneInfo(trigger.timezone)).strftime("%Y-%m-%d %H:%M %Z")
        late = ctx.now() - at
        nxt = next_fire(trigger.schedule, trigger.timezone, max(at, ctx.now()))
        then = [NewJob("triggers.cron", cron_key(name, index, nxt), {**p, "at": nxt}, nxt)]
        if late > MISSED_GRACE and trigger.missed == "skip":
            record_delivery(
                ctx.db,
                kind="cron",
                source=name,
                outcome="skipped",
                http_status=None,
                reason=f"{local} was missed by {late:.0f} s (missed: skip)",
                delivery_key=job.key,
            )
            return Done(note="missed; skipped", then=then)
        values = {"scheduled_at": at, "schedule": trigger.schedule, "timezone": trigger.timezone}
        self._fire(ctx, pipeline, job.key, "cron", f"cron {local}", trigger.params, values)
        return Done(then=then)

    # ---- image ---------------------------------------------------------------------------------------
    def image(self, job: Job, ctx: JobContext) -> Done | Failed:
        p = job.payload
        name, index = str(p["pipeline"]), int(p["index"])
        with ctx.db.read() as conn:
            pipeline = self.catalog.one(conn, name)
        trigger = pipeline.triggers[index] if pipeline is not None and index < len(pipeline.triggers) else None
        if pipeline is None or not isinstance(trigger, ImageTrigger) or not trigger.enabled:
            return Done(note="the trigger is gone: polling stops")
        if not job.key.startswith(f"image:{name}:{index}:{_image_spec(trigger)}:"):
            return Done(note="the trigger changed: this poll chain stops (reconcile starts the new one)")
        n = int(p.get("n", 0)) + 1
        due = ctx.now() + trigger.poll_interval
        try:
            found = self.find_images(trigger.account, trigger.region, trigger.image_name, trigger.tags)
        except (GennakerError, OSError) as exc:
            record_delivery(
                ctx.db,
                kind="image",
                source=name,
                outcome="refused",
                http_status=None,
                reason=f"could not list images in {trigger.account}/{trigger.region}: {exc}",
            )
            nxt = NewJob("triggers.image", _next_image_key(job.key, n), {**p, "n": n}, due)
            return Done(note=f"poll failed: {exc}", then=[nxt])
        ids = [image_id for image_id, _ in sorted(found, key=lambda x: x[1])]
        seen = p.get("seen")
        if seen is not None:
            new = [i for i in ids if i not in set(seen)]
            if new:
                newest = new[-1]
                self._fire(
                    ctx, pipeline, f"image:{name}:{newest}", "image", f"image {newest}", {}, {"image_id": newest}
                )
        remembered = (list(seen or []) + [i for i in ids if i not in set(seen or [])])[-SEEN_IMAGES:]
        nxt = NewJob("triggers.image", _next_image_key(job.key, n), {**p, "seen": remembered, "n": n}, due)
        return Done(then=[nxt])

    # ---- pipeline ------------------------------------------------------------------------------------
    @staticmethod
    def wants(event: ExecutionEvent) -> bool:
        """Only an execution's ending can start another pipeline."""
        return event.event in ("pipeline.complete", "pipeline.failed")

    def listener(self, conn: Connection, event: ExecutionEvent) -> None:
        """Told by the engine inside the transaction that ends an execution."""
        if not self.wants(event):
            return
        children = [
            (child.name, i)
            for child, i, t in self.catalog.with_triggers(conn, "pipeline")
            if isinstance(t, PipelineTrigger) and t.pipeline == event.pipeline and event.status in t.status
        ]
        if not children:
            return

        def schedule() -> None:
            for name, i in children:
                payload = {"pipeline": name, "index": i, "parent": event.execution_id}
                jobs.schedule(conn, "triggers.pipeline", f"pipeline:{name}:{event.execution_id}", payload, event.at)

        write_in_savepoint(conn, f"scheduling the pipelines after {event.pipeline}", schedule)

    def after_pipeline(self, job: Job, ctx: JobContext) -> Done:
        p = job.payload
        name, parent_id = str(p["pipeline"]), str(p["parent"])
        with ctx.db.read() as conn:
            pipeline = self.catalog.one(conn, name)
            parent = conn.execute(
                select(executions.c.pipeline, executions.c.status).where(executions.c.id == parent_id)
            ).first()
            outputs = {
                r.stage_id: r.outputs or {}
                for r in conn.execute(
                    select(stages.c.stage_id, stages.c.outputs).where(stages.c.execution_id == parent_id)
                )
            }
        if pipeline is None or parent is None:
            return Done(note="the pipeline or its parent execution is gone")
        values = {
            "parent": {
                "execution_id": parent_id,
                "pipeline": parent.pipeline,
                "status": parent.status,
                "outputs": outputs,
            }
        }
        self._fire(ctx, pipeline, job.key, "pipeline", f"after {parent.pipeline} #{parent_id[:8]}", {}, values)
        return Done()

    # ---- shared --------------------------------------------------------------------------------------
    def _fire(
        self,
        ctx: JobContext,
        pipeline: Any,
        key: str,
        kind: str,
        label: str,
        params: dict[str, Any],
        values: dict[str, Any],
    ) -> None:
        try:
            with ctx.db.begin() as conn:
                fired = fire(conn, pipeline, key=key, kind=kind, label=label, actor=ACTOR, params=params, values=values)
                record_delivery(
                    conn,
                    kind=kind,
                    source=pipeline.name,
                    outcome="started" if fired.execution_id else "duplicate",
                    http_status=None,
                    delivery_key=key,
                    summary={"label": label},
                    fired=[fired],
                )
        except GennakerError as exc:  # a parameter that cannot be bound: recorded, never retried forever
            record_delivery(
                ctx.db,
                kind=kind,
                source=pipeline.name,
                outcome="refused",
                http_status=None,
                reason=str(exc),
                delivery_key=key,
                summary={"label": label},
            )


def _image_spec(t: ImageTrigger) -> str:
    """A short digest of what the trigger looks for: a changed trigger starts a new poll chain."""
    import hashlib

    raw = f"{t.account}|{t.region}|{t.image_name}|{sorted(t.tags.items())}|{t.poll_interval}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def _next_image_key(key: str, n: int) -> str:
    return f"{key.rsplit(':', 1)[0]}:{n}"

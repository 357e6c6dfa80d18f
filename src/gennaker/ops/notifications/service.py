"""Notifications wired to the rest: the delivery and reminder jobs, and the engine's event listener.

- ``deliver`` (job ``notification.deliver``): send one delivery through its channel; a failure the
  channel says may pass is retried with backoff, every attempt is a ``job_attempts`` row and the
  delivery keeps its attempt count and last error.
- ``on_event`` (``Engine.on_event``): inside the transaction of a pipeline's state change, enqueue a
  delivery for each channel the pipeline subscribed to that event, and for ``judgment.awaiting``
  with ``remind_every`` a reminder job that says it again until the judgment is answered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, select, update

from gennaker.engine import jobs, views
from gennaker.engine.events import ExecutionEvent, write_in_savepoint
from gennaker.engine.jobs import Done, Failed, Job, JobContext, JobHandler, JobOutcome, NewJob, Retry
from gennaker.engine.model import STAGE_ACTIVE, Status, new_id
from gennaker.errors import NotFound
from gennaker.ops.notifications.channels import Outgoing, SendError, Senders
from gennaker.ops.notifications.deliveries import DELIVER, FAILED, PENDING, SENT, Notice, enqueue, get_delivery
from gennaker.ops.notifications.tables import notification_deliveries as deliveries
from gennaker.spec.config import Config, NotificationSettings, SnsChannel
from gennaker.spec.models import Subscription
from gennaker.store.db import Database
from gennaker.store.tables import executions, stages

log = logging.getLogger("gennaker.notifications")

REMIND = "notification.remind"
MAX_REMINDERS = 500  # a judgment waiting that long has a timeout to end it; this bounds a forgotten one
_SUBSCRIPTIONS = TypeAdapter(list[Subscription])
_TITLES = {
    "pipeline.starting": "{pipeline} started",
    "pipeline.complete": "{pipeline} succeeded",
    "pipeline.failed": "{pipeline} failed",
    "stage.starting": "{pipeline}: stage {stage} started",
    "stage.complete": "{pipeline}: stage {stage} succeeded",
    "stage.failed": "{pipeline}: stage {stage} failed",
    "judgment.awaiting": "{pipeline}: {stage} awaits a judgment",
    "judgment.continued": "{pipeline}: {stage} judged, continuing",
    "judgment.stopped": "{pipeline}: {stage} judged, stopping",
}


def _severity(event: str) -> str:
    if event.endswith(".failed") or event == "judgment.stopped":
        return "error"
    return "warning" if event == "judgment.awaiting" else "info"


def _short(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass
class Notifications:
    db: Database
    settings: NotificationSettings
    senders: Senders
    public_url: str | None = None  # the console's address for links; None: links are paths
    _cache: OrderedDict[str, list[Subscription]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def build(
        cls, config: Config, db: Database, aws: Any = None, environ: Mapping[str, str] | None = None
    ) -> Notifications:
        """``aws``: the runtime's AwsSessions, for ``sns`` channels (built only when one exists)."""
        sns = None
        if aws is not None and any(isinstance(c, SnsChannel) for c in config.notifications.channels.values()):
            sns = sns_sender(aws)
        public = config.server.get("public_url")
        return cls(
            db=db,
            settings=config.notifications,
            senders=Senders(environ=os.environ if environ is None else environ, sns=sns),
            public_url=str(public).rstrip("/") if public else None,
        )

    def job_handlers(self) -> dict[str, JobHandler]:
        return {DELIVER: self.deliver, REMIND: self.remind}

    def link(self, path: str) -> str:
        return f"{self.public_url}{path}" if self.public_url else path

    def _backoff(self, attempt: int) -> float:
        return jobs.backoff(attempt, self.settings.backoff, self.settings.backoff_max)

    # ---- sending ------------------------------------------------------------------------------------
    def deliver(self, job: Job, ctx: JobContext) -> JobOutcome:
        delivery_id = str(job.payload.get("delivery"))
        with ctx.db.read() as conn:
            d = get_delivery(conn, delivery_id)
        if d is None:
            return Failed(f"delivery {delivery_id} does not exist")
        if d["status"] != PENDING:  # sent by an attempt that stopped before recording its job's end
            return Done(f"already {d['status']}")
        channel = self.settings.channels.get(d["channel"])
        if channel is None:
            error = f"unknown notification channel '{d['channel']}'"
            self._record(ctx.db, delivery_id, job.attempt, FAILED, error)
            return Failed(error)
        out = Outgoing(delivery_id, d["channel"], Notice.from_dict(d["notice"]), job.attempt)
        try:
            note = self.senders.send(channel, out)
        except SendError as exc:
            final = not exc.retryable or job.last_attempt
            self._record(ctx.db, delivery_id, job.attempt, FAILED if final else PENDING, str(exc))
            return Retry(self._backoff(job.attempt), str(exc)) if exc.retryable else Failed(str(exc))
        except Exception as exc:  # a bug in a sender: recorded and retried like a passing failure
            log.exception("sending delivery %s through %s raised", delivery_id, d["channel"])
            error = f"internal error: {type(exc).__name__}: {exc}"
            self._record(ctx.db, delivery_id, job.attempt, FAILED if job.last_attempt else PENDING, error)
            return Retry(self._backoff(job.attempt), error)
        self._record(ctx.db, delivery_id, job.attempt, SENT, None)
        return Done(note)

    @staticmethod
    def _record(db: Database, delivery_id: str, attempt: int, status: str, error: str | None) -> None:
        now = time.time()
        values: dict[str, Any] = {"status": status, "attempts": attempt, "updated_at": now}
        if status == SENT:
            values["sent_at"] = now
        if error is not None or status == SENT:
            values["last_error"] = error
        with db.begin() as conn:
            conn.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))

    def send_test(self, channel: str, actor: str) -> str:
        """Enqueue a test notice to ``channel`` (which must be declared); returns its delivery id."""
        if channel not in self.settings.channels:
            known = ", ".join(sorted(self.settings.channels)) or "none declared"
            raise NotFound(f"unknown notification channel '{channel}' (known: {known})")
        notice = Notice(
            event="test",
            title=f"Test notification from Gennaker ({channel})",
            text=f"{actor} asked for a test of channel '{channel}'. If you read this, it works.",
            link=self.link("/"),
            fields={"channel": channel, "requested by": actor},
            severity="info",
        )
        with self.db.begin() as conn:
            return enqueue(conn, [channel], notice, f"test:{new_id()}", max_attempts=self.settings.max_attempts)[0]

    # ---- pipelines' events --------------------------------------------------------------------------
    def on_event(self, conn: Connection, evt: ExecutionEvent) -> None:
        subs = self._subscriptions(conn, evt.execution_id)
        if not subs:
            return
        wanted = [s.channel for s in subs if s.wants(evt.event)]
        if not wanted:
            return

        def write() -> None:  # in a savepoint: whatever goes wrong here leaves the engine's own change whole
            key = f"{evt.event}:{evt.execution_id}:{evt.stage_id or ''}:{evt.attempt or 0}"
            self._enqueue(conn, wanted, self.notice(evt), key)
            if evt.event == "judgment.awaiting":
                for s in subs:
                    if s.remind_every and s.wants(evt.event):
                        payload = _reminder(evt, s.channel, s.remind_every, 1)
                        jobs.schedule(conn, REMIND, _reminder_key(payload), payload, evt.at + s.remind_every)

        write_in_savepoint(conn, f"notifying of {evt.event}", write)

    def _enqueue(self, conn: Connection, channels: list[str], notice: Notice, key: str) -> list[str]:
        return enqueue(
            conn, channels, notice, key, known_channels=self.settings.channels, max_attempts=self.settings.max_attempts
        )

    def notice(self, evt: ExecutionEvent, reminder: int = 0) -> Notice:
        stage = f"'{evt.stage_name}'" if evt.stage_name else ""
        title = _TITLES.get(evt.event, "{pipeline}: " + evt.event).format(pipeline=evt.pipeline, stage=stage)
        if reminder:
            title += f" (reminder {reminder})"
        path = f"/executions/{evt.execution_id}" + (f"/stages/{evt.stage_id}" if evt.stage_id else "")
        fields = {"application": evt.application, "pipeline": evt.pipeline, "execution": evt.execution_id}
        if evt.stage_id:
            fields["stage"] = evt.stage_id
        fields["status"] = evt.status
        for k in ("choice", "by"):
            if evt.details.get(k):
                fields[k] = str(evt.details[k])
        text = evt.message or ""
        if evt.event == "judgment.awaiting":
            text = str(evt.details.get("instructions") or "") or f"Judge it at {self.link(path)}"
        return Notice(
            event=evt.event,
            title=title,
            text=text or f"{evt.pipeline} is {evt.status}",
            link=self.link(path),
            application=evt.application,
            fields=fields,
            severity=_severity(evt.event),
        )

    def _subscriptions(self, conn: Connection, execution_id: str) -> list[Subscription]:
        """The subscriptions of the pipeline an execution runs, read once from its kept document."""
        with self._lock:
            if execution_id in self._cache:
                return self._cache[execution_id]
        text = conn.execute(select(executions.c.pipeline_text).where(executions.c.id == execution_id)).scalar()
        subs: list[Subscription] = []
        if text and "notifications" in text:
            try:
                doc = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
                subs = _SUBSCRIPTIONS.validate_python((doc or {}).get("notifications") or [])
            except (yaml.YAMLError, ValidationError, AttributeError) as exc:  # it was valid when it started
                log.warning("execution %s: cannot read its notifications: %s", execution_id, exc)
        with self._lock:
            self._cache[execution_id] = subs
            while len(self._cache) > 1000:
                self._cache.popitem(last=False)
        return subs

    # ---- reminders ----------------------------------------------------------------------------------
    def remind(self, job: Job, ctx: JobContext) -> JobOutcome:
        """Say again that a judgment waits, and come back in ``every`` — until it is answered."""
        p = job.payload
        with ctx.db.read() as conn:
            ex = conn.execute(select(executions).where(executions.c.id == p["execution_id"])).first()
            st = conn.execute(
                select(stages).where(stages.c.execution_id == p["execution_id"], stages.c.stage_id == p["stage_id"])
            ).first()
        if ex is None or st is None:
            return Done("the execution is gone")
        if (
            ex.status not in (Status.RUNNING, Status.PAUSED)
            or st.status not in STAGE_ACTIVE
            or st.attempt != p["attempt"]
            or not views.awaiting_judgment(dict(st._mapping))
        ):
            return Done("answered (or no longer waiting): reminders stop")
        evt = ExecutionEvent(
            event="judgment.awaiting",
            execution_id=ex.id,
            pipeline=ex.pipeline,
            application=ex.application,
            status=str(st.status),
            at=ctx.now(),
            stage_id=st.stage_id,
            stage_name=st.name or st.stage_id,
            attempt=st.attempt,
            details={"instructions": ((st.context or {}).get("resolved") or {}).get("instructions")},
        )
        n = int(p["n"])
        with ctx.db.begin() as conn:  # the same key on a repeat of this attempt: sent once
            key = f"judgment.awaiting:{ex.id}:{st.stage_id}:{st.attempt}:r{n}"
            self._enqueue(conn, [p["channel"]], self.notice(evt, reminder=n), key)
        if n >= MAX_REMINDERS:
            return Done(f"reminder {n} sent; the last one")
        nxt = {**p, "n": n + 1}
        return Done(f"reminder {n} sent", then=[NewJob(REMIND, _reminder_key(nxt), nxt, ctx.now() + float(p["every"]))])


def _reminder(evt: ExecutionEvent, channel: str, every: float, n: int) -> dict[str, Any]:
    return {
        "execution_id": evt.execution_id,
        "stage_id": evt.stage_id,
        "attempt": evt.attempt,
        "channel": channel,
        "every": every,
        "n": n,
    }


def _reminder_key(p: Mapping[str, Any]) -> str:
    return f"remind:{p['execution_id']}:{_short(p['stage_id'], p['attempt'], p['channel'])}:{p['n']}"


def sns_sender(aws: Any) -> Any:
    """The ``sns`` channel's sender: a Publish through the AWS provider package."""
    from gennaker.cloud.aws.sns import PublishError, SnsPublisher

    publisher = SnsPublisher(aws)

    def send(ch: SnsChannel, out: Outgoing) -> str:
        n = out.notice
        lines = [n.title, "", n.text, ""] + [f"{k}: {v}" for k, v in n.fields.items()]
        if n.link:
            lines += ["", n.link]
        attributes = {"gennaker.delivery": out.delivery_id, "gennaker.event": n.event}
        try:
            message_id = publisher.publish(
                ch.account, ch.topic_arn, n.title, "\n".join(lines), attributes, ch.timeout, ch.region
            )
        except PublishError as exc:
            raise SendError(str(exc), retryable=exc.retryable) from None
        except Exception as exc:  # e.g. an account that is not configured (CloudError, ConfigError)
            raise SendError(f"SNS Publish: {type(exc).__name__}: {exc}", retryable=False) from None
        return f"published as {message_id}"

    return send

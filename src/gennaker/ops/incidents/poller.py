"""The poller of alarm states: a periodic job (``incidents.poll_alarms``) reading every alarm of the
configured AWS accounts (``incidents.poll.accounts``) through their providers, and feeding each
change of state it sees into ``record_transition``, the path SNS deliveries take.

It is the fallback when SNS cannot reach Gennaker, and the only intake for simulated AWS, which
evaluates no alarms and fires no actions (tests set states with SetAlarmState). Each run schedules
the next under the key of its time slot, so a repeated run schedules nothing twice; a worker's start
schedules the current slot (``ensure_polling``) in case the chain was broken. An account that cannot
be read is logged and noted on the job; the others are read and the next run still comes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import Connection, select

from gennaker.cloud.registry import provider_for
from gennaker.engine import jobs
from gennaker.ops.incidents.intake import AlarmTransition, IntakeResult, record_transition
from gennaker.ops.incidents.settings import IncidentSettings
from gennaker.ops.incidents.tables import alarm_states
from gennaker.store.db import Database

POLL = "incidents.poll_alarms"
log = logging.getLogger("gennaker.incidents")


def slot_key(every: float, at: float) -> str:
    return f"incidents:poll:{int(at // every)}"


def ensure_polling(db: Database, settings: IncidentSettings, now: float | None = None) -> bool:
    """Schedule the poll of the current time slot (nothing if it exists, or no account is polled)."""
    if not settings.poll.accounts:
        return False
    now = time.time() if now is None else now
    with db.begin() as conn:
        return jobs.schedule(conn, POLL, slot_key(settings.poll.every, now), {}, now)


def _known(conn: Connection, account: str, region: str) -> dict[str, tuple[str, float]]:
    rows = conn.execute(
        select(alarm_states.c.alarm, alarm_states.c.state, alarm_states.c.changed_at).where(
            alarm_states.c.account == account, alarm_states.c.region == region
        )
    ).all()
    return {r.alarm: (r.state, r.changed_at) for r in rows}


def alarm_tags(services: Any, account: str, region: str, alarm: str) -> dict[str, str]:
    """An alarm's tags (its ARN from DescribeAlarms, then ListTagsForResource)."""
    cloudwatch = services.aws.client(account, region, "cloudwatch")
    page = cloudwatch.describe_alarms(AlarmNames=[alarm], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    found = page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])
    if not found or not found[0].get("AlarmArn"):
        return {}
    tags = cloudwatch.list_tags_for_resource(ResourceARN=found[0]["AlarmArn"]).get("Tags", [])
    return {t["Key"]: t["Value"] for t in tags}


def poll_account(
    db: Database, services: Any, settings: IncidentSettings, account: str, region: str
) -> list[IntakeResult]:
    """Read one account and region's alarms and take in every change since the last poll."""
    states = provider_for(services, account, region).alarm_states(None)
    with db.read() as conn:
        known = _known(conn, account, region)
    results = []
    for s in states:
        if s.state not in ("OK", "ALARM", "INSUFFICIENT_DATA"):
            continue
        at = s.updated_at.timestamp() if s.updated_at is not None else time.time()
        before = known.get(s.name)
        if before is not None and before[0] == s.state and abs(before[1] - at) < 0.001:
            continue
        if before is None and s.state != "ALARM":
            tags: dict[str, str] = {}  # first sight of a quiet alarm: remembered, tags read when it fires
        else:
            try:
                tags = alarm_tags(services, account, region, s.name)
            except Exception as exc:  # tags only refine the rules: take the transition in without them
                log.warning("reading the tags of alarm %s in %s/%s failed: %s", s.name, account, region, exc)
                tags = {}
        transition = AlarmTransition(
            source="poll",
            account=account,
            region=region,
            alarm=s.name,
            state=s.state,
            previous=before[0] if before else None,
            reason=s.reason,
            at=at,
            tags=tags,
            dimensions=dict(s.dimensions),
        )
        with db.begin() as conn:
            results.append(record_transition(conn, transition, settings))
    return results


def poll_alarms(job: jobs.Job, ctx: jobs.JobContext, services: Any, settings: IncidentSettings) -> jobs.JobOutcome:
    """One round over every polled account and region, then the next round's job."""
    errors = []
    for account in settings.poll.accounts:
        try:
            regions = services.config.account(account).regions
        except Exception as exc:  # an unknown account name: say so every round, poll the others
            errors.append(str(exc))
            continue
        for region in regions:
            try:
                poll_account(ctx.db, services, settings, account, region)
            except Exception as exc:
                log.warning("polling the alarms of %s/%s failed: %s", account, region, exc)
                errors.append(f"{account}/{region}: {exc}")
    now = ctx.now()
    every = settings.poll.every
    nxt = jobs.NewJob(POLL, slot_key(every, now + every), {}, (int(now // every) + 1) * every)
    return jobs.Done(note="; ".join(errors)[:2000] or None, then=[nxt])

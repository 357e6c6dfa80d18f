"""On simulated AWS, end to end through the jobs a worker runs: an alarm set to ALARM with
SetAlarmState is found by the poller and opens an incident with the priority its tags' rule gives;
the incident's channels and escalation level 1 hear of it on a real local webhook receiver; nobody
acknowledges, so level 2 is notified after the delay; an acknowledged incident escalates no further;
the alarm back to OK resolves the incident after the quiet period."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gennaker.engine import jobs
from gennaker.engine.jobs import Job, JobContext
from gennaker.ops.incidents import ensure_polling, escalation, store
from gennaker.runtime import Runtime
from tests.incidents.support import LEVEL_1_DELAY, events, put_alarm, runner, runtime, set_state, wait_for
from tests.notifications.conftest import Receiver, serve_receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as rec:
        yield rec


@pytest.fixture
def rt(moto_endpoint: str, receiver: Receiver, tmp_path: Path) -> Iterator[Runtime]:
    runtime_ = runtime(moto_endpoint, receiver.url, tmp_path)
    yield runtime_
    runtime_.db.dispose()


def _incidents(rt: Runtime, **kw: str) -> list[dict[str, object]]:
    with rt.db.read() as conn:
        return store.list_incidents(conn, **kw)  # type: ignore[arg-type]


def test_alarm_opens_incident_escalates_and_resolves(rt: Runtime, moto_endpoint: str, receiver: Receiver) -> None:
    put_alarm(moto_endpoint, "shop-5xx", {"criticality": "high", "application": "shop"})
    worker = runner(rt)
    assert ensure_polling(rt.db, rt.incidents)
    worker.run_due()
    assert _incidents(rt) == []  # a new alarm is OK: remembered, nothing opened

    set_state(moto_endpoint, "shop-5xx", "ALARM", "Threshold Crossed: 42 > 10")
    opened = wait_for("the poller to open an incident", lambda: _incidents(rt), [worker])
    assert len(opened) == 1
    inc = opened[0]
    assert (inc["priority"], inc["rule"], inc["application"], inc["status"]) == ("P1", "high", "shop", "triggered")
    assert inc["source"] == "poll"

    # the incident's channel and level 1's channel each get one incident.triggered
    wait_for("the first notifications", lambda: events(receiver.requests, "/pager"), [worker])
    assert events(receiver.requests, "/ops") == ["incident.triggered"]
    assert events(receiver.requests, "/pager") == ["incident.triggered"]
    first = next(r.json for r in receiver.requests if r.path == "/pager")
    assert first["fields"]["priority"] == "P1" and first["link"].endswith(f"/incidents/{inc['id']}")

    # nobody acknowledges: level 2 after level 1's delay, once
    wait_for("escalation to level 2", lambda: events(receiver.requests, "/second"), [worker], timeout=5)
    time.sleep(0.3)
    worker.run_due()
    assert events(receiver.requests, "/second") == ["incident.escalated"]
    with rt.db.read() as conn:
        kinds = [e["kind"] for e in store.timeline(conn, str(inc["id"]))]
        assert store.get(conn, str(inc["id"]))["escalation_level"] == 1
    assert kinds.count("escalated") == 1 and "triggered" in kinds

    # the alarm back to OK: resolved after the quiet period (0.5 s), not before
    set_state(moto_endpoint, "shop-5xx", "OK", "back to normal")
    wait_for("the OK to be seen", lambda: _incidents(rt)[0]["alarms"]["not_ok"] == 0, [worker])  # type: ignore[index]
    assert _incidents(rt)[0]["status"] == "triggered"
    resolved = wait_for(
        "the quiet period to resolve it", lambda: _incidents(rt, status="resolved"), [worker], timeout=5
    )
    assert resolved[0]["resolved_by"] == "auto"
    wait_for("the resolved notice", lambda: "incident.resolved" in events(receiver.requests, "/ops"), [worker])
    assert events(receiver.requests, "/ops") == ["incident.triggered", "incident.resolved"]


def test_ack_stops_escalation(rt: Runtime, moto_endpoint: str, receiver: Receiver) -> None:
    put_alarm(moto_endpoint, "shop-latency", {"criticality": "high", "application": "shop"})
    worker = runner(rt)
    ensure_polling(rt.db, rt.incidents)
    worker.run_due()
    set_state(moto_endpoint, "shop-latency", "ALARM")
    inc = wait_for("an incident", lambda: _incidents(rt), [worker])[0]
    with rt.db.begin() as conn:
        pending = store.get(conn, str(inc["id"]))["escalation_job"]
        store.ack(conn, str(inc["id"]), "alice")
    with rt.db.read() as conn:
        assert jobs.get(conn, pending)["status"] == jobs.CANCELED  # type: ignore[index]
    time.sleep(LEVEL_1_DELAY + 0.2)  # past level 1's delay
    wait_for("level 1's notifications", lambda: events(receiver.requests, "/pager"), [worker])
    worker.run_due()
    assert events(receiver.requests, "/second") == []
    with rt.db.read() as conn:
        kinds = [e["kind"] for e in store.timeline(conn, str(inc["id"]))]
    assert "acknowledged" in kinds and "escalated" not in kinds


def test_low_priority_does_not_escalate(rt: Runtime, moto_endpoint: str, receiver: Receiver) -> None:
    put_alarm(moto_endpoint, "shop-disk", {"criticality": "low", "application": "shop"})
    worker = runner(rt)
    ensure_polling(rt.db, rt.incidents)
    worker.run_due()
    set_state(moto_endpoint, "shop-disk", "ALARM")
    inc = wait_for("an incident", lambda: _incidents(rt), [worker])[0]
    assert inc["priority"] == "P5" and inc["escalation_job"] is None
    time.sleep(LEVEL_1_DELAY + 0.2)
    wait_for("level 1's notice", lambda: events(receiver.requests, "/pager"), [worker])
    assert events(receiver.requests, "/second") == []


def test_a_repeated_escalation_step_sends_nothing_twice(rt: Runtime, moto_endpoint: str, receiver: Receiver) -> None:
    """A worker killed after a step's transaction but before its job was finished runs it again: the
    same deliveries, one timeline entry, one next step."""
    put_alarm(moto_endpoint, "shop-hosts", {"criticality": "high", "application": "shop"})
    worker = runner(rt)
    ensure_polling(rt.db, rt.incidents)
    worker.run_due()
    set_state(moto_endpoint, "shop-hosts", "ALARM")
    inc = wait_for("an incident", lambda: _incidents(rt), [worker])[0]
    key = str(inc["escalation_job"])
    job = Job(1, key, escalation.ESCALATE, {"incident": inc["id"], "loop": 0, "level": 1}, 1, 8, time.time())
    ctx = JobContext(db=rt.db, worker_id="w1")
    escalation.escalate(job, ctx, rt.incidents)
    with rt.db.begin() as conn:  # the step's own job key stays the pending one, as before a crash
        conn.execute(store.incidents.update().where(store.incidents.c.id == inc["id"]).values(escalation_job=key))
    escalation.escalate(job, ctx, rt.incidents)
    with rt.db.read() as conn:
        timeline = store.timeline(conn, str(inc["id"]))
    escalated = [e for e in timeline if e["kind"] == "escalated"]
    notified = [e for e in timeline if e["kind"] == "notified" and "escalated" in e["text"]]
    assert len(escalated) == 1 and len(notified) == 1
    assert len(notified[0]["deliveries"]) == 1  # one delivery on the level's one channel

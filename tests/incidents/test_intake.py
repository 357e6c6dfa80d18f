"""``record_transition`` against a real store, on SQLite and PostgreSQL: a rule's dedup key merges
alarms into one incident (also when they arrive at the same moment from many threads), the incident
resolves only when every alarm is OK, stale and cross-source repeats change nothing, business hours
in a time zone pick the rule, and a resolved incident's key opens a new incident next time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gennaker.ops.incidents import incident_settings, store
from gennaker.ops.incidents.intake import AlarmTransition, IntakeResult, record_transition
from gennaker.ops.incidents.settings import IncidentSettings
from gennaker.store.db import Database, open_database
from tests.conftest import fresh_postgres_database

SETTINGS = incident_settings(
    {
        "business_hours": {"timezone": "Europe/Berlin", "start": "08:00", "end": "18:00"},
        "rules": [
            {"name": "by-app", "match": {"alarm": "app-*"}, "dedup_key": "app:{application}", "priority": "P2"},
            {"name": "office", "match": {"alarm": "desk-*", "business_hours": True}, "priority": "P2"},
            {"name": "night", "match": {"alarm": "desk-*", "business_hours": False}, "priority": "P4"},
        ],
    }
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        database = open_database(f"sqlite:///{tmp_path / 'g.db'}")
        yield database
        database.dispose()
        return
    with fresh_postgres_database("gennaker_inc") as database:
        yield database


def take(
    db: Database, alarm: str, state: str, at: float, settings: IncidentSettings = SETTINGS, **kw: str
) -> IntakeResult:
    t = AlarmTransition(
        source=kw.get("source", "poll"),
        account="prod",
        region="eu-central-1",
        alarm=alarm,
        state=state,
        previous=None,
        reason=f"{alarm} {state}",
        at=at,
        application=kw.get("application", "shop"),
    )
    with db.begin() as conn:
        return record_transition(conn, t, settings)


def open_incidents(db: Database) -> list[dict[str, object]]:
    with db.read() as conn:
        return store.list_incidents(conn, status="open")


def test_a_rules_dedup_key_merges_and_every_alarm_must_be_ok(db: Database) -> None:
    now = time.time()
    first = take(db, "app-5xx", "ALARM", now)
    second = take(db, "app-latency", "ALARM", now + 1)
    assert (first.outcome, second.outcome) == ("created", "merged")
    assert first.incident_id == second.incident_id
    [inc] = open_incidents(db)
    assert inc["dedup_key"] == "app:shop" and inc["priority"] == "P2"
    assert take(db, "app-5xx", "OK", now + 2).outcome == "recorded"  # app-latency still fires
    assert take(db, "app-latency", "OK", now + 3).outcome == "resolving"
    assert take(db, "app-latency", "OK", now + 3).outcome == "duplicate"


def test_many_alarms_of_one_key_at_once_open_one_incident(db: Database) -> None:
    now = time.time()
    results: list[IntakeResult] = []
    barrier = threading.Barrier(6)

    def one(i: int) -> None:
        barrier.wait()
        results.append(take(db, f"app-check-{i}", "ALARM", now))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.outcome for r in results) == ["created"] + ["merged"] * 5
    assert len({r.incident_id for r in results}) == 1
    [inc] = open_incidents(db)
    assert inc["alarms"] == {"total": 6, "not_ok": 6}


def test_stale_and_cross_source_repeats_change_nothing(db: Database) -> None:
    now = time.time()
    assert take(db, "solo", "ALARM", now, source="sns").outcome == "created"
    # the poller reads the same state a few hundred ms apart from SNS's timestamp: the same transition
    assert take(db, "solo", "ALARM", now + 0.3, source="poll").outcome == "duplicate"
    assert take(db, "solo", "OK", now - 60).outcome == "stale"  # a late delivery of an older change
    [inc] = open_incidents(db)
    with db.read() as conn:
        assert [a["state"] for a in store.alarms_of(conn, str(inc["id"]))] == ["ALARM"]


def test_business_hours_in_their_time_zone_pick_the_rule(db: Database) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    monday_morning = datetime(2026, 11, 30, 9, 30, tzinfo=berlin).timestamp()
    sunday = datetime(2026, 11, 29, 9, 30, tzinfo=berlin).timestamp()
    monday_night = datetime(2026, 11, 30, 18, 0, tzinfo=berlin).timestamp()  # the end is exclusive
    take(db, "desk-a", "ALARM", monday_morning)
    take(db, "desk-b", "ALARM", sunday)
    take(db, "desk-c", "ALARM", monday_night)
    rules = {str(i["title"]).split()[0]: (i["rule"], i["priority"]) for i in open_incidents(db)}
    assert rules == {"desk-a": ("office", "P2"), "desk-b": ("night", "P4"), "desk-c": ("night", "P4")}


def test_a_resolved_incident_frees_its_key(db: Database) -> None:
    now = time.time()
    first = take(db, "flappy", "ALARM", now)
    with db.begin() as conn:
        store.resolve(conn, str(first.incident_id), "pat")
    again = take(db, "flappy", "ALARM", now + 10)
    assert again.outcome == "created" and again.incident_id != first.incident_id
    with db.begin() as conn, pytest.raises(Exception, match="resolved"):
        store.ack(conn, str(first.incident_id), "pat")

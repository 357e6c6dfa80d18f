"""Canary analyses and judgements in the database: idempotent writes, reads scoped to applications."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gennaker.errors import NotFound
from gennaker.metrics import AnalysisConfig, Series, judge, plan_windows
from gennaker.metrics import store as canary_store
from gennaker.metrics.sources import MetricError
from gennaker.store.db import Database, open_database

CONFIG = AnalysisConfig.model_validate(
    {
        "lifetime": "2m",
        "interval": "1m",
        "step": "10s",
        "metrics": [{"name": "errors", "source": "haproxy", "query": "http_5xx_rate", "critical": True}],
    }
)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        yield database
    finally:
        database.dispose()


def _analysis(db: Database, application: str = "shop", attempt: int = 1) -> str:
    return canary_store.create_analysis(
        db,
        application=application,
        baseline="shop-web-baseline-v001",
        canary="shop-web-canary-v001",
        location="local",
        config=CONFIG.model_dump(mode="json", by_alias=True),
        started_at=1000.0,
        execution_id="e1",
        stage_id="canary",
        attempt=attempt,
    )


def test_an_analysis_is_created_once_per_stage_attempt(db: Database) -> None:
    first = _analysis(db)
    assert _analysis(db) == first
    assert _analysis(db, attempt=2) != first
    second = _analysis(db, attempt=2)
    assert {a["id"] for a in canary_store.list_analyses(db, execution_id="e1")} == {first, second}
    assert canary_store.list_analyses(db, execution_id="e2") == []


def test_a_judgement_stored_twice_keeps_the_first(db: Database) -> None:
    analysis = _analysis(db)
    window = plan_windows(CONFIG, datetime.fromtimestamp(1000.0, UTC))[0]
    good = {"errors": Series((1.0, 2.0, 3.0), (0.0, 0.0, 0.0))}
    bad = {"errors": Series((1.0, 2.0, 3.0), (0.3, 0.4, 0.5))}
    passed = judge(CONFIG, good, good)
    stored = canary_store.record_judgement(db, analysis, window, passed, good, good)
    assert stored["result"] == "pass" and stored["index"] == 1
    again = canary_store.record_judgement(db, analysis, window, judge(CONFIG, good, bad), good, bad)
    assert again["result"] == "pass"  # the first one stands
    full = canary_store.get_analysis(db, analysis)
    assert len(full["judgements"]) == 1
    metric = full["judgements"][0]["metrics"][0]
    assert metric["label"] == "Pass" and metric["baseline"] == {"t": [1.0, 2.0, 3.0], "v": [0.0, 0.0, 0.0]}


def test_errors_are_stored_with_their_reason_and_the_outcome_once(db: Database) -> None:
    analysis = _analysis(db)
    window = plan_windows(CONFIG, datetime.fromtimestamp(1000.0, UTC))[1]
    broken = {"errors": MetricError("cannot read HAProxy")}
    stored = canary_store.record_judgement(db, analysis, window, judge(CONFIG, broken, broken), broken, broken)
    assert stored["metrics"][0]["canary"] == {"error": "cannot read HAProxy"} and stored["result"] == "fail"
    canary_store.finish_analysis(db, analysis, "failed", "fail", 0.0, "errors: Error")
    ended = canary_store.get_analysis(db, analysis)["ended_at"]
    canary_store.finish_analysis(db, analysis, "failed", "fail", 0.0, "errors: Error")
    assert canary_store.get_analysis(db, analysis)["ended_at"] == ended


def test_reads_outside_the_readable_applications_are_not_found(db: Database) -> None:
    analysis = _analysis(db, application="shop")
    with pytest.raises(NotFound):
        canary_store.get_analysis(db, analysis, readable={"other"})
    assert canary_store.get_analysis(db, analysis, readable={"shop"})["id"] == analysis
    assert canary_store.list_analyses(db, readable={"other"}) == []
    with pytest.raises(NotFound):
        canary_store.get_analysis(db, "nope")

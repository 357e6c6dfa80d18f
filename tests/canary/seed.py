"""A stored canary analysis with synthetic series, for the CLI, API and console tests."""

from __future__ import annotations

from datetime import UTC, datetime

from gennaker.metrics import AnalysisConfig, Series, judge, plan_windows
from gennaker.metrics import store as canary_store
from gennaker.store.db import Database

CONFIG = AnalysisConfig.model_validate(
    {
        "lifetime": "2m",
        "interval": "1m",
        "step": "5s",
        "metrics": [
            {"name": "errors", "source": "haproxy", "query": "http_5xx_rate", "direction": "increase"}
            | {"critical": True},
            {"name": "latency", "source": "haproxy", "query": "response_time", "direction": "increase"},
        ],
    }
)
STARTED = 1_764_590_000.0


def series(values: list[float]) -> Series:
    return Series(tuple(STARTED + 5 * i for i in range(len(values))), tuple(values))


def seed_analysis(db: Database, application: str = "shop", bad: bool = False, execution_id: str = "e1") -> str:
    """An analysis of two judgements: the first passes; the second fails when ``bad`` (errors rise)."""
    analysis = canary_store.create_analysis(
        db,
        application=application,
        baseline=f"{application}-web-baseline-v001",
        canary=f"{application}-web-canary-v001",
        location="local",
        config=CONFIG.model_dump(mode="json", by_alias=True),
        started_at=STARTED,
        execution_id=execution_id,
        stage_id="canary",
    )
    windows = plan_windows(CONFIG, datetime.fromtimestamp(STARTED, UTC))
    quiet = [0.0] * 12
    latency = [10.0 + (i % 3) for i in range(12)]
    for window in windows:
        errors = [0.04 + 0.01 * (i % 3) for i in range(12)] if bad and window.last else quiet
        base = {"errors": series(quiet), "latency": series(latency)}
        can = {"errors": series(errors), "latency": series(latency)}
        canary_store.record_judgement(db, analysis, window, judge(CONFIG, base, can), base, can)
    last = canary_store.get_analysis(db, analysis)["judgements"][-1]
    status = "failed" if last["result"] == "fail" else "succeeded"
    canary_store.finish_analysis(db, analysis, status, last["result"], last["score"])
    return analysis

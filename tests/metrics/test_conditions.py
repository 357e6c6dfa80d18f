"""Metric conditions (local alarms): the model's validation and the evaluator's states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from gennaker.metrics.conditions import Condition, evaluate, evaluate_all
from gennaker.metrics.haproxy import HAProxySource
from gennaker.metrics.prometheus import PrometheusSource
from gennaker.metrics.sources import Fetched, MetricError, MetricQuery, Scope, Series
from tests.conftest import free_port

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
T = NOW.timestamp()
SCOPE = Scope("shop-web-v002", "local")


def cond(**fields: object) -> Condition:
    return Condition.model_validate(
        {"source": "haproxy", "query": "http_5xx_rate", "op": ">", "threshold": 0.02, **fields}
    )


class Scripted:
    """A source answering every query with the same series (or error), cut to the window asked,
    counting its fetches."""

    name = "scripted"

    def __init__(self, answer: Series | MetricError):
        self.answer = answer
        self.fetches: list[tuple[int, datetime, datetime, float]] = []

    def check(self, query: str) -> str | None:
        return None

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        self.fetches.append((len(queries), start, end, step))
        answer = self.answer
        if isinstance(answer, Series):
            kept = [
                (t, v)
                for t, v in zip(answer.timestamps, answer.values, strict=True)
                if start.timestamp() <= t <= end.timestamp()
            ]
            answer = Series(tuple(t for t, _ in kept), tuple(v for _, v in kept))
        return {s.server_group: {q.name: answer for q in queries} for s in scopes}


def series(*points: tuple[float, float]) -> Series:
    return Series(tuple(T + dt for dt, _ in points), tuple(v for _, v in points))


def test_breached_only_when_every_point_of_the_window_is_beyond() -> None:
    c = cond(**{"for": "30s", "step": "10s"})
    sustained = Scripted(series((-25, 0.05), (-15, 0.04), (-5, 0.03)))
    result = evaluate(c, sustained, SCOPE, NOW)  # type: ignore[arg-type]
    assert (result.state, result.value) == ("BREACHED", 0.03)
    assert result.reason == "0.03 > 0.02 in all 3 points over 30s"
    assert result.label == "haproxy http_5xx_rate > 0.02"

    one_good = Scripted(series((-25, 0.05), (-15, 0.01), (-5, 0.03)))
    ok = evaluate(c, one_good, SCOPE, NOW)  # type: ignore[arg-type]
    assert ok.state == "OK" and "2 of 3 points" in ok.reason
    # a point older than the window does not count
    old = Scripted(series((-45, 0.0), (-5, 0.5)))
    assert evaluate(c, old, SCOPE, NOW).state == "BREACHED"  # type: ignore[arg-type]


def test_ops_and_nan_points() -> None:
    s = Scripted(series((-5, 3.0)))
    assert evaluate(cond(op="<", threshold=5), s, SCOPE, NOW).state == "BREACHED"  # type: ignore[arg-type]
    assert evaluate(cond(op=">=", threshold=3), s, SCOPE, NOW).state == "BREACHED"  # type: ignore[arg-type]
    assert evaluate(cond(op="<=", threshold=2.9), s, SCOPE, NOW).state == "OK"  # type: ignore[arg-type]
    nan_only = Scripted(series((-5, float("nan"))))
    assert evaluate(cond(), nan_only, SCOPE, NOW).state == "NO_DATA"  # type: ignore[arg-type]


def test_missing_data_is_no_data_unless_treated_otherwise() -> None:
    empty = Scripted(Series())
    assert evaluate(cond(), empty, SCOPE, NOW).state == "NO_DATA"  # type: ignore[arg-type]
    assert evaluate(cond(treat_missing_data="breaching"), empty, SCOPE, NOW).state == "BREACHED"  # type: ignore[arg-type]
    assert evaluate(cond(treat_missing_data="not_breaching"), empty, SCOPE, NOW).state == "OK"  # type: ignore[arg-type]


def test_an_unreadable_source_is_unknown_with_its_reason_never_ok() -> None:
    result = evaluate(cond(), Scripted(MetricError("HAProxy is down")), SCOPE, NOW)  # type: ignore[arg-type]
    assert result.state == "UNKNOWN" and result.reason == "haproxy cannot be read: HAProxy is down"

    class Raising(Scripted):
        def fetch(self, *args: object, **kwargs: object) -> Fetched:
            raise OSError("socket gone")

    raised = evaluate(cond(), Raising(Series()), SCOPE, NOW)  # type: ignore[arg-type]
    assert raised.state == "UNKNOWN" and "OSError: socket gone" in raised.reason
    missing = evaluate_all([cond(source="prometheus", query="up")], {}, SCOPE, NOW)
    assert missing[0].state == "UNKNOWN" and "'prometheus' is not available" in missing[0].reason
    # a real Prometheus client against a port nobody listens on
    down = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    result = evaluate(cond(source="prometheus", query='sum(up{g="${scope}"})'), down, SCOPE, NOW)
    assert result.state == "UNKNOWN" and "cannot be read" in result.reason


def test_evaluate_all_fetches_once_per_source_step_and_window() -> None:
    s = Scripted(series((-5, 0.5)))
    conditions = [
        cond(),
        cond(query="request_rate", op="<", threshold=0.1),  # shares the first one's fetch
        cond(query="response_time", threshold=500, **{"for": "1m"}),
        cond(step="1s"),
    ]
    results = evaluate_all(conditions, {"haproxy": s}, SCOPE, NOW)  # type: ignore[dict-item]
    assert [r.state for r in results] == ["BREACHED", "OK", "OK", "NO_DATA"]  # the 1 s window ends after -5 s
    assert sorted((n, (end - start).total_seconds(), step) for n, start, end, step in s.fetches) == [
        (1, 1.0, 1.0),
        (1, 60.0, 10.0),
        (2, 10.0, 10.0),
    ]


@dataclass
class Row:
    backend: str
    server: str
    hrsp_2xx: int
    hrsp_3xx: int = 0
    hrsp_4xx: int = 0
    hrsp_5xx: int = 0
    rtime: int = 5


def test_over_the_haproxy_source_5xx_rate_of_the_scope_only() -> None:
    """The real HAProxy source over scripted counters: the new group answers 10 % errors, the old
    one none; the condition on the new group's scope is breached, on the old one it is not."""
    clock = {"t": T - 30}
    counters = {"new": [0, 0], "old": [0, 0]}

    def stats() -> list[Row]:
        return [
            Row("shop-web", "shop-web-v002-1", counters["new"][0], hrsp_5xx=counters["new"][1]),
            Row("shop-web", "shop-web-v001-1", counters["old"][0]),
        ]

    source = HAProxySource(stats, clock=lambda: clock["t"])
    for _ in range(4):  # a sample every 10 s; 90 good and 10 bad answers a step on the new group
        source.sample()
        clock["t"] += 10
        counters["new"][0] += 90
        counters["new"][1] += 10
        counters["old"][0] += 100
    c = cond(**{"for": "20s", "step": "10s"})
    new = evaluate(c, source, SCOPE, NOW)
    assert new.state == "BREACHED" and new.value == pytest.approx(0.1), new
    old = evaluate(c, source, Scope("shop-web-v001", "local"), NOW)
    assert old.state == "OK" and old.value == 0.0


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"source": "datadog"}, "unknown metric source 'datadog' (one of: cloudwatch, haproxy, prometheus)"),
        ({"query": "errors"}, "haproxy has no measure 'errors'"),
        ({"op": "=="}, "Input should be '>', '>=', '<' or '<='"),
        ({"for": "soon"}, "not a duration: 'soon'"),
        ({"step": 0}, "must be longer than 0"),
        ({"threshold": "nan"}, "finite number"),
        ({"thresold": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_conditions_are_refused_with_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        cond(**fields)
    assert message in str(err.value)


def test_the_window_is_for_and_at_least_one_step() -> None:
    assert cond().window == 10.0
    assert cond(**{"for": "30s"}).window == 30.0
    assert cond(name="errors").label == "errors"
    long = cond(source="prometheus", query="sum(rate(x[1m])) " * 10)
    assert len(long.label) < 120 and long.label.endswith("> 0.02")

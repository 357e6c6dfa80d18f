"""The declared registry of sources, and fetching one interval across sources."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gennaker.metrics import AnalysisConfig, Label, MetricError, MetricQuery, Scope, Series, SourceSettings, judge
from gennaker.metrics.judge import fetch_interval
from gennaker.metrics.prometheus import PrometheusSource
from gennaker.metrics.sources import Fetched, build_sources, check_queries

END = datetime(2026, 12, 1, 12, tzinfo=UTC)
START = END - timedelta(minutes=10)
BASE, CANARY = Scope("shop-web-v001", "local"), Scope("shop-web-v002", "local")


def analysis(*metrics: dict[str, str]) -> AnalysisConfig:
    return AnalysisConfig.model_validate({"lifetime": "10m", "step": "10s", "metrics": list(metrics)})


def test_the_registry_declares_every_source_and_unconfigured_ones_say_why() -> None:
    sources = build_sources(SourceSettings())
    assert sorted(sources) == ["cloudwatch", "haproxy", "prometheus"]
    fetched = sources["prometheus"].fetch([MetricQuery("m", "up")], [BASE], START, END, 10)
    assert fetched == {
        BASE.server_group: {"m": MetricError("prometheus is not configured (no Prometheus URL in the settings)")}
    }
    assert isinstance(
        sources["haproxy"].fetch([MetricQuery("m", "http_5xx_rate")], [BASE], START, END, 10)["shop-web-v001"]["m"],
        MetricError,
    )
    configured = build_sources(SourceSettings(prometheus_url="http://127.0.0.1:9090"))
    assert isinstance(configured["prometheus"], PrometheusSource)


def test_an_unconfigured_source_makes_the_canary_fail_not_pass() -> None:
    config = analysis({"name": "latency", "source": "prometheus", "query": "up"})
    baseline, canary = fetch_interval(build_sources(SourceSettings()), config, BASE, CANARY, START, END)
    judgement = judge(config, baseline, canary)
    assert judgement.metrics[0].label is Label.ERROR
    assert judgement.result == "fail"


def test_check_queries_names_unknown_sources_and_bad_queries() -> None:
    sources = build_sources(SourceSettings(prometheus_url="http://127.0.0.1:9090"))
    problems = check_queries(
        sources,
        [
            ("a", "prometheus", 'x{g="${scope}'),
            ("b", "datadog", "q"),
            ("c", "cloudwatch", "metric=x"),
            ("d", "prometheus", "up"),
        ],
    )
    assert problems == [
        "metric 'a': unterminated string literal (\") in the query",
        "metric 'b': unknown source 'datadog' (one of: cloudwatch, haproxy, prometheus)",
        "metric 'c': the query names no namespace",
    ]


class Recording:
    """A source that answers from memory and records its fetches (the one-fetch-per-interval rule)."""

    name = "memory"

    def __init__(self) -> None:
        self.fetches: list[tuple[list[str], list[str]]] = []

    def check(self, query: str) -> str | None:
        return None

    def fetch(
        self, queries: Sequence[MetricQuery], scopes: Sequence[Scope], start: datetime, end: datetime, step: float
    ) -> Fetched:
        self.fetches.append(([q.name for q in queries], [s.server_group for s in scopes]))
        return {s.server_group: {q.name: Series((0.0, 1.0), (1.0, 2.0)) for q in queries} for s in scopes}


def test_fetch_interval_calls_each_source_once_for_both_groups() -> None:
    memory = Recording()
    config = analysis(
        {"name": "a", "source": "memory", "query": "x"},
        {"name": "b", "source": "memory", "query": "y"},
        {"name": "c", "source": "elsewhere", "query": "z"},
    )
    baseline, canary = fetch_interval({"memory": memory}, config, BASE, CANARY, START, END)
    assert memory.fetches == [(["a", "b"], ["shop-web-v001", "shop-web-v002"])]
    assert baseline["a"] == canary["b"] == Series((0.0, 1.0), (1.0, 2.0))
    assert baseline["c"] == MetricError("unknown metric source 'elsewhere'")
    with pytest.raises(ValueError, match="same server group"):
        fetch_interval({"memory": memory}, config, BASE, BASE, START, END)


def test_the_metrics_layer_imports_nothing_above_it() -> None:
    """metrics/ sits beside cloud/: it may use spec/ and the AWS session, never stages, ops or above."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys, gennaker.metrics, gennaker.metrics.cloudwatch, gennaker.metrics.prometheus;"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('gennaker'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}  # this tree
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    loaded = run.stdout.split()
    assert "gennaker.metrics.judge" in loaded
    allowed = ("gennaker.metrics", "gennaker.spec", "gennaker.errors", "gennaker.cloud.aws.session")
    outside = [
        m for m in loaded if m not in ("gennaker", "gennaker.cloud", "gennaker.cloud.aws") and not m.startswith(allowed)
    ]
    assert outside == []

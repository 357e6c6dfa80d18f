"""The Prometheus source against a real Prometheus scraping two tiny applications via file_sd."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from gennaker.metrics import AnalysisConfig, Label, MetricError, MetricQuery, Scope, Series, judge
from gennaker.metrics.judge import fetch_interval
from gennaker.metrics.prometheus import PrometheusSource, TemplateError, render
from tests.conftest import free_port

PROMETHEUS = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
A, B = Scope("a", "local"), Scope("b", "local")
LATENCY = 'demo_latency_seconds{server_group="${scope}"}'


class App:
    """A stdlib HTTP server exposing /metrics: a latency gauge around ``base`` that moves each scrape."""

    def __init__(self, base: float):
        self.base = base
        self.scrapes = 0
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                app.scrapes += 1
                value = app.base + 0.01 * (app.scrapes % 5)
                body = (
                    "# TYPE demo_latency_seconds gauge\n"
                    f"demo_latency_seconds {value}\n"
                    "# TYPE demo_requests_total counter\n"
                    f"demo_requests_total {app.scrapes}\n"
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@contextmanager
def running_prometheus(root: Path, targets: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Debian's Prometheus scraping every second the file_sd targets matching ``targets``, on a free
    port, its data and log under ``root``; stopped on leaving."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "app", "file_sd_configs": [{"files": [targets], "refresh_interval": "1s"}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    assert PROMETHEUS is not None
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(root / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if PROMETHEUS is None:
        pytest.skip("Debian's prometheus is not installed (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prometheus")
    apps = {"a": App(0.10), "b": App(0.50)}
    (root / "targets").mkdir()
    for group, app in apps.items():  # one file per instance, like the local provider writes
        target = [{"targets": [f"127.0.0.1:{app.port}"], "labels": {"server_group": group}}]
        (root / "targets" / f"{group}.json").write_text(json.dumps(target))
    try:
        with running_prometheus(root, str(root / "targets" / "*.json")) as (url, process):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # ready, and at least 8 samples of both groups
                if process.poll() is not None:
                    pytest.fail(f"prometheus exited: {(root / 'prometheus.log').read_text()[-2000:]}")
                try:
                    query = {"query": "count_over_time(demo_latency_seconds[1m])"}
                    answer = httpx.get(f"{url}/api/v1/query", params=query)
                    result = answer.json()["data"]["result"] if answer.status_code == 200 else []
                    if len(result) == 2 and all(float(r["value"][1]) >= 8 for r in result):
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail("prometheus collected no samples of both groups in 60 s")
            yield url
    finally:
        for app in apps.values():
            app.server.shutdown()


def window() -> tuple[datetime, datetime]:
    end = datetime.now(UTC)
    return end - timedelta(seconds=8), end


def test_fetch_both_groups_over_one_session(prometheus: str) -> None:
    source = PrometheusSource(prometheus)
    start, end = window()
    fetched = source.fetch([MetricQuery("latency", LATENCY)], [A, B], start, end, 1.0)
    a, b = fetched["a"]["latency"], fetched["b"]["latency"]
    assert isinstance(a, Series) and isinstance(b, Series)
    assert len(a.values) >= 8 and len(b.values) >= 8
    assert all(0.10 <= v <= 0.14 for v in a.values) and all(0.50 <= v <= 0.54 for v in b.values)
    assert list(a.timestamps) == sorted(a.timestamps)
    assert source.requests == 2  # Prometheus evaluates one expression a request: one per metric and group


def test_judge_real_samples(prometheus: str) -> None:
    analysis = AnalysisConfig.model_validate(
        {
            "lifetime": "1m",
            "step": "1s",
            "metrics": [
                {"name": "latency", "source": "prometheus", "query": LATENCY, "direction": "increase"},
                {"name": "up", "source": "prometheus", "query": 'sum(up{server_group="${scope}"})'},
            ],
        }
    )
    start, end = window()
    baseline, canary = fetch_interval({"prometheus": PrometheusSource(prometheus)}, analysis, A, B, start, end)
    judgement = judge(analysis, baseline, canary)
    labels = {m.name: m.label for m in judgement.metrics}
    assert labels == {"latency": Label.HIGH, "up": Label.PASS}  # b's latency is five times a's
    assert judgement.score == 50.0


def test_no_samples_is_an_empty_series(prometheus: str) -> None:
    start, end = window()
    query = MetricQuery("m", 'demo_latency_seconds{server_group="${scope}", nope="x"}')
    assert PrometheusSource(prometheus).fetch([query], [A], start, end, 1.0)["a"]["m"] == Series()


def test_many_series_bad_promql_and_no_server_are_errors(prometheus: str) -> None:
    start, end = window()
    queries = [
        MetricQuery("many", '{__name__=~"demo_.*", server_group="${scope}"}'),
        MetricQuery("bad", "sum(demo_latency_seconds"),
    ]
    fetched = PrometheusSource(prometheus).fetch(queries, [A], start, end, 1.0)["a"]
    assert isinstance(fetched["many"], MetricError) and "returned 2 series" in fetched["many"].reason
    assert isinstance(fetched["bad"], MetricError) and "bad_data" in fetched["bad"].reason
    nobody = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    missing = nobody.fetch(queries[:1], [A], start, end, 1.0)["a"]["many"]
    assert isinstance(missing, MetricError) and "cannot be read" in missing.reason


def test_a_hostile_server_group_name_cannot_change_the_query(prometheus: str) -> None:
    start, end = window()
    hostile = Scope('a"} or vector(1) or demo_latency_seconds{x="', "local")
    fetched = PrometheusSource(prometheus).fetch([MetricQuery("m", LATENCY)], [hostile], start, end, 1.0)
    assert fetched[hostile.server_group]["m"] == Series()  # a label value that exists nowhere


def test_window_too_long_for_prometheus_is_an_error() -> None:
    end = datetime.now(UTC)
    day = end - timedelta(days=1)
    fetched = PrometheusSource("http://127.0.0.1:9").fetch([MetricQuery("m", "up")], [A], day, end, 1)
    assert isinstance(fetched["a"]["m"], MetricError) and "11,000 steps" in fetched["a"]["m"].reason


@pytest.mark.parametrize(
    ("template", "value", "expected"),
    [
        ('x{g="${scope}"}', 'a"b\\c', 'x{g="a\\"b\\\\c"}'),
        ("x{g='${scope}'}", "it's", "x{g='it\\'s'}"),
        ('x{g=~"${scope}.*"}', "shop-web.v1", 'x{g=~"shop-web\\\\.v1.*"}'),
        ('x{g="${scope}", r="${location}"}', "a\nb", 'x{g="a\\nb", r="us-east-1"}'),
        ('x{g="\\"${scope}"}', "a", 'x{g="\\"a"}'),
        ("label_replace(x, 'g', '${scope}', '', '') or ${scope}_total", "shop", None),
    ],
)
def test_render_escapes_for_where_the_value_stands(template: str, value: str, expected: str | None) -> None:
    rendered = render(template, {"scope": value, "location": "us-east-1"})
    if expected is not None:
        assert rendered == expected
    else:
        assert rendered == "label_replace(x, 'g', 'shop', '', '') or shop_total"


def test_render_refuses_what_it_cannot_make_safe() -> None:
    with pytest.raises(TemplateError, match="not a plain name"):
        render("sum(${scope})", {"scope": "a) or vector(1", "location": "x"})
    with pytest.raises(TemplateError, match="unterminated"):
        render('x{g="${scope}}', {"scope": "a", "location": "x"})
    assert PrometheusSource("http://127.0.0.1:9").check('x{g="${scope}') is not None
    assert PrometheusSource("http://127.0.0.1:9").check(LATENCY) is None

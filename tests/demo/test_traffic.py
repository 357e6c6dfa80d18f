"""The bounded load generator: it stops by itself, stays on loopback, and its summaries add up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gennaker.sandbox.traffic import (
    NO_VERSION,
    GroupRates,
    LoadGenerator,
    Response,
    percentile,
    rates_line,
    summarize,
    timeline,
)
from tests.conftest import free_port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status = 500 if self.path == "/bad" else 200
        body = b"1.2.3\n" if status == 200 else b"injected error\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App-Version", "1.2.3")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def app() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_request_budget_stops_it_by_itself(app: int) -> None:
    load = LoadGenerator("127.0.0.1", app, threads=3, max_requests=50, max_seconds=30, pause=0).start()
    deadline = time.monotonic() + 20
    while load.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not load.running
    answers = load.snapshot()
    assert len(answers) == 50
    assert {a.version for a in answers} == {"1.2.3"} and all(a.ok for a in answers)


def test_time_budget_stops_it_by_itself(app: int) -> None:
    load = LoadGenerator("127.0.0.1", app, threads=2, max_requests=10**9, max_seconds=0.5, keep_alive=True).start()
    time.sleep(1.5)
    assert not load.running
    assert 0 < load.count() < 10**9


def test_a_rate_paces_the_requests_evenly(app: int) -> None:
    load = LoadGenerator("127.0.0.1", app, threads=3, rate=100, max_requests=10**6, max_seconds=1.0).start()
    time.sleep(1.3)
    answers = load.stop()
    # 100/s for 1 s: about 100 (not the thousands an unpaced loop sends), spread over the second.
    assert 80 <= len(answers) <= 110, len(answers)
    halves = [sum(1 for a in answers if (a.sent - load.started < 0.5) == first) for first in (True, False)]
    assert min(halves) >= 35, halves


@pytest.mark.parametrize("rate", [0, -1, 10**6])
def test_a_rate_out_of_bounds_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate"):
        LoadGenerator("127.0.0.1", 1, rate=rate)


def test_errors_are_counted_with_the_version_that_answered(app: int) -> None:
    with LoadGenerator("127.0.0.1", app, path="/bad", threads=1, max_requests=5, pause=0) as load:
        load.wait_for(5)
    answers = load.snapshot()
    assert [a.status for a in answers] == [500] * 5 and {a.version for a in answers} == {"1.2.3"}
    assert summarize(answers).failures == 5


def test_nothing_listening_is_a_failure_with_no_version() -> None:
    with LoadGenerator("127.0.0.1", free_port(), threads=1, max_requests=3, pause=0) as load:
        load.wait_for(3)
    answers = load.snapshot()
    assert answers and all(a.status == 0 and a.version == NO_VERSION and a.error for a in answers)


@pytest.mark.parametrize("host", ["10.0.0.1", "example.com", "0.0.0.0"])
def test_only_loopback_addresses(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        LoadGenerator(host, 80)


def test_summaries() -> None:
    answers = [
        Response(float(i) / 10, 0.001 * (i + 1), 200 if i % 10 else 503, "a" if i < 50 else "b") for i in range(100)
    ]
    s = summarize(answers, 0.0, 10.0)
    assert (s.sent, s.failures) == (100, 10)
    assert s.p50 == pytest.approx(0.050) and s.p99 == pytest.approx(0.099) and s.rps == pytest.approx(10)
    assert percentile([], 99) == 0.0 and percentile([3.0], 50) == 3.0
    buckets = timeline(answers, 0.0, step=5.0)
    assert [sorted(b.by_version) for b in buckets] == [["a"], ["b"]]
    assert buckets[0].by_version["a"].requests == 50 and buckets[0].by_version["a"].errors == 5


def test_group_rates_are_differences_of_the_balancer_counters() -> None:
    counters = {"shop-web-v001": {"2xx": 0, "5xx": 0, "scur": 0}}
    rates = GroupRates(lambda: counters)
    counters = {"shop-web-v001": {"2xx": 100, "5xx": 10, "scur": 1}, "shop-web-v002": {"2xx": 5, "scur": 0}}
    time.sleep(0.1)
    sample = {r.group: r for r in rates.sample()}
    assert sample["shop-web-v001"].rps > sample["shop-web-v002"].rps > 0
    assert sample["shop-web-v001"].errors_per_second > 0
    assert "shop-web-v001" in rates_line(sample.values())

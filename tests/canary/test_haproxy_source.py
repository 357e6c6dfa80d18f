"""The haproxy metric source against a real haproxy and real sample-app processes."""

from __future__ import annotations

import http.client
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from gennaker.cloud.local.haproxy import HAProxy, LoadBalancerSpec
from gennaker.cloud.local.instances import InstanceManager
from gennaker.metrics.haproxy import HAProxySource, Sample, steps
from gennaker.metrics.sources import MetricError, MetricQuery, Scope, Series
from tests.local.helpers import put_in_rotation, start_group

QUERIES = [
    MetricQuery("rate", "request_rate"),
    MetricQuery("errors", "http_5xx_rate"),
    MetricQuery("latency", "response_time"),
]


def _get(spec: LoadBalancerSpec, n: int) -> None:
    for _ in range(n):
        conn = http.client.HTTPConnection(spec.host, spec.port, timeout=10)
        try:
            conn.request("GET", "/")
            conn.getresponse().read()
        finally:
            conn.close()


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def test_per_group_rates_from_show_stat_deltas(
    haproxy: HAProxy, instances: InstanceManager, lb_spec: LoadBalancerSpec, tmp_path: Path
) -> None:
    good = start_group(instances, "shop-web-v001", "1.0.0", count=1)
    bad = start_group(instances, "shop-web-v002", "2.0.0", count=2, ERROR_RATE="0.5", LATENCY_MS="20")
    put_in_rotation(haproxy, good)
    put_in_rotation(haproxy, bad)
    source = HAProxySource(haproxy.show_stat, tmp_path / "samples.jsonl")
    start = time.time()
    source.sample()
    for _ in range(4):
        time.sleep(0.3)
        _get(lb_spec, 30)
        source.sample()
    idle_from = time.time()
    time.sleep(0.3)
    source.sample()
    end = time.time()
    scopes = [Scope(n, "local") for n in ("shop-web-v001", "shop-web-v002", "shop-web-v009")]
    fetched = source.fetch(QUERIES, scopes, _at(start), _at(end), 0.25)

    good_rate, bad_rate = fetched["shop-web-v001"]["rate"], fetched["shop-web-v002"]["rate"]
    assert isinstance(good_rate, Series) and isinstance(bad_rate, Series)
    # Round robin over 3 servers: the two-server group answers about twice as many requests.
    assert 4 <= len(good_rate.values) <= 5 and len(bad_rate.values) == len(good_rate.values)
    assert sum(bad_rate.values) > 1.5 * sum(good_rate.values) > 0
    good_errors, bad_errors = fetched["shop-web-v001"]["errors"], fetched["shop-web-v002"]["errors"]
    assert isinstance(good_errors, Series) and isinstance(bad_errors, Series)
    assert set(good_errors.values) == {0.0}
    assert 0.2 < sum(bad_errors.values) / len(bad_errors.values) < 0.8
    latency = fetched["shop-web-v002"]["latency"]
    assert isinstance(latency, Series) and min(latency.values) >= 15  # ms
    # The idle last step and a group that never answered: no points (Nodata), not zeros.
    assert all(t <= idle_from + 0.05 for t in good_rate.timestamps)
    assert fetched["shop-web-v009"]["errors"] == Series()
    # Another process (a new source on the same file) sees the same history.
    again = HAProxySource(haproxy.show_stat, tmp_path / "samples.jsonl")
    assert again.samples() == source.samples()[: len(again.samples())] and len(again.samples()) >= 7


def test_unreadable_haproxy_is_an_error_for_every_metric(tmp_path: Path) -> None:
    def broken() -> list[object]:
        raise OSError("connection refused")

    source = HAProxySource(broken, tmp_path / "s.jsonl")  # type: ignore[arg-type]
    now = time.time()
    fetched = source.fetch(QUERIES, [Scope("a-v001", "local")], _at(now - 10), _at(now), 1)
    for value in fetched["a-v001"].values():
        assert isinstance(value, MetricError) and "connection refused" in value.reason


def test_unknown_measure_is_refused() -> None:
    source = HAProxySource(list)
    assert source.check("p99") is not None and "http_5xx_rate" in str(source.check("p99"))
    assert source.check("http_5xx_rate") is None


def test_a_server_added_or_reset_between_samples_counts_from_zero() -> None:
    samples = [
        Sample(0.0, {"lb/g-v001-1": [10, 0, 0, 0, 1]}),
        Sample(1.0, {"lb/g-v001-1": [2, 0, 0, 1, 1], "lb/g-v001-2": [4, 0, 0, 0, 1]}),
    ]
    (step,) = steps(samples, 0.0, 1.0, 1.0)
    assert step.groups["g-v001"][:2] == [7.0, 1.0]  # 3 from the reset server, 4 from the new one


def test_the_sample_file_stays_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gennaker.metrics import haproxy as source_module

    monkeypatch.setattr(source_module, "PRUNE_AT_BYTES", 4000)
    row = SimpleNamespace(backend="lb", server="g-v001-1", hrsp_2xx=0, hrsp_3xx=0, hrsp_4xx=0, hrsp_5xx=0, rtime=1)
    clock = iter(float(t) for t in range(1000))
    source = HAProxySource(lambda: [row], tmp_path / "s.jsonl", clock=lambda: next(clock))
    for i in range(300):
        row.hrsp_2xx = i
        source.sample()
    assert (tmp_path / "s.jsonl").stat().st_size <= 4000
    kept = source.samples()
    assert kept[-1].at == 299.0 and kept[-1].counters == {"lb/g-v001-1": [299, 0, 0, 0, 1]} and len(kept) > 10

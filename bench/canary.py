"""Benchmark: canary judgement time, and metric API calls per interval.

1. Judgement time: 20 metrics x 1,000 points per group (baseline and canary), every metric through
   the full classifier (cleaning, Mann-Whitney, Hodges-Lehmann interval, effect size) and the
   scorer. Goal: <= 50 ms per judgement.
2. Calls per interval: 20 CloudWatch metrics for both groups fetched for one interval from
   simulated AWS (moto on loopback, counted with botocore events). Goal: one call per source.

    python bench/canary.py [--repeat 30] [--skip-aws]

Prints one markdown table line per figure (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from gennaker.metrics import AnalysisConfig, Scope, Series, judge
from gennaker.metrics.judge import fetch_interval

METRICS = 20
POINTS = 1_000


def analysis(source: str = "memory", query: str = "q") -> AnalysisConfig:
    metrics = [
        {
            "name": f"m{i}",
            "source": source,
            "query": query.format(i=i),
            "direction": "increase" if i % 2 else "either",
            "outliers": "remove" if i % 3 == 0 else "keep",
            "group": "performance" if i < 10 else "default",
        }
        for i in range(METRICS)
    ]
    return AnalysisConfig.model_validate(
        {"lifetime": "30m", "step": "10s", "metrics": metrics, "groups": {"performance": 40}}
    )


def series_pair(rng: np.random.Generator, i: int) -> tuple[Series, Series]:
    """Latency-like samples; every fifth metric has a canary 10 % worse, every seventh has ties."""
    base = rng.lognormal(mean=-1.5, sigma=0.3, size=POINTS)
    can = rng.lognormal(mean=-1.5, sigma=0.3, size=POINTS) * (1.1 if i % 5 == 0 else 1.0)
    if i % 7 == 0:
        base, can = np.round(base, 2), np.round(can, 2)
    stamps = tuple(float(t) for t in range(POINTS))
    return Series(stamps, tuple(base.tolist())), Series(stamps, tuple(can.tolist()))


def bench_judgement(repeat: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds per judgement (CPU time tells a busy machine from slow code)."""
    config = analysis()
    rng = np.random.default_rng(2026)
    pairs = [series_pair(rng, i) for i in range(METRICS)]
    baseline = {f"m{i}": b for i, (b, _) in enumerate(pairs)}
    canary = {f"m{i}": c for i, (_, c) in enumerate(pairs)}
    judge(config, baseline, canary)  # warm up imports and caches
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        judgement = judge(config, baseline, canary)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    labels = sorted({str(m.label) for m in judgement.metrics})
    print(f"  last judgement: score {judgement.score:.1f} ({judgement.result}); labels {labels}")
    return times, cpu


def bench_cloudwatch_calls() -> tuple[int, int]:
    """(GetMetricData calls, data points read) for one interval of 20 metrics x 2 groups."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    from gennaker.cloud.aws.session import AwsSessions
    from gennaker.metrics.sources import SourceSettings, build_sources
    from gennaker.spec.config import Account, Config

    logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # moto's server logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        port = server._server.server_port  # type: ignore[attr-defined]
        endpoint = f"http://127.0.0.1:{port}"
        groups = [
            Scope("shop-web-v001", "us-east-1", account="sim"),
            Scope("shop-web-v002", "us-east-1", account="sim"),
        ]
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(minutes=10)
        keys = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # simulated AWS only
        put = boto3.client("cloudwatch", region_name="us-east-1", endpoint_url=endpoint, **keys)
        for scope in groups:
            dims = [{"Name": "AutoScalingGroupName", "Value": scope.server_group}]
            data = [
                {
                    "MetricName": f"M{i}",
                    "Dimensions": dims,
                    "Timestamp": start + timedelta(seconds=10 * k + 1),
                    "Value": float(k % 7),
                }
                for i in range(METRICS)
                for k in range(60)
            ]
            for chunk in range(0, len(data), 20):
                put.put_metric_data(Namespace="Bench", MetricData=data[chunk : chunk + 20])
        sessions = AwsSessions(Config(accounts={"sim": Account(endpoint_url=endpoint, **keys)}))
        calls = [0]

        def count(model: Any, **_: Any) -> None:
            calls[0] += model.name == "GetMetricData"

        sessions.add_client_hook(lambda raw: raw.meta.events.register("before-call", count))
        config = analysis("cloudwatch", "namespace=Bench metric=M{i} stat=Average")
        baseline, canary = fetch_interval(build_sources(SourceSettings(aws=sessions)), config, *groups, start, end)
        points = sum(len(s.values) for s in [*baseline.values(), *canary.values()] if isinstance(s, Series))
        return calls[0], points
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--skip-aws", action="store_true", help="only the judgement time")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}")
    times, cpu = bench_judgement(max(1, min(args.repeat, 500)))
    median, p95 = statistics.median(times), sorted(times)[int(0.95 * (len(times) - 1))]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    verdict = "meets" if median <= 50 else "misses"
    print("| figure | result | goal |")
    print("|---|---|---|")
    print(
        f"| canary judgement, {METRICS} metrics x {POINTS:,} points per group | median {median:.1f} ms, "
        f"p95 {p95:.1f} ms, CPU median {statistics.median(cpu):.1f} ms ({verdict}; load average {load:.1f}) "
        "| <= 50 ms |"
    )
    if not args.skip_aws:
        calls, points = bench_cloudwatch_calls()
        print(
            f"| CloudWatch calls per interval, {METRICS} metrics x 2 groups | {calls} GetMetricData "
            f"({points:,} points) | 1 per source |"
        )
        print(
            f"| Prometheus requests per interval, {METRICS} metrics x 2 groups | {2 * METRICS} "
            "(one expression each, one HTTP session) | inherent to its API |"
        )


if __name__ == "__main__":
    main()

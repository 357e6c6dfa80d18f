"""Benchmark: Gennaker's own time in a red/black deploy, and AWS API calls per deploy.

Runs against the sandbox (moto in this process). The deploy and cleanup stages' tasks are driven
the way the engine drives them (context persisted between calls, waits skipped with a fake clock).
"Own time" is the time spent inside task calls minus the time spent inside AWS API calls (measured
with botocore's before-call/after-call events); it is what Gennaker adds on top of AWS.

    python bench/deploy.py [--deploys 20] [--out docs/benchmarks-deploy.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox import start_sandbox
from gennaker.spec.config import config_from_text
from gennaker.stages.base import StageType, TaskContext
from gennaker.stages.cleanup import CleanupServerGroups
from gennaker.stages.deploy import Deploy


class AwsTimer:
    """Seconds spent inside AWS calls, per thread (botocore events around each call)."""

    def __init__(self) -> None:
        self.local = threading.local()
        self.total = 0.0

    def hook(self, client: Any) -> None:
        client.meta.events.register("before-call", self._before)
        client.meta.events.register("after-call", self._after)

    def _before(self, **_kw: Any) -> None:
        self.local.start = time.perf_counter()

    def _after(self, **_kw: Any) -> None:
        self.total += time.perf_counter() - self.local.start


def drive(
    stage: StageType,
    raw: dict[str, Any],
    services: Any,
    execution_id: str,
    timer: AwsTimer,
    per_task: dict[str, list[tuple[float, float]]],
) -> dict[str, Any]:
    config = stage.Config.model_validate({"id": stage.type, "type": stage.type, **raw})
    clock = [1_000_000.0]
    context: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    for task in stage.tasks(config):
        spent = aws = 0.0
        while True:
            ctx = TaskContext(
                execution_id=execution_id,
                stage_id=config.id,
                pipeline="bench",
                application="shop",
                trigger={},
                config=config,
                context=dict(context),
                outputs=dict(outputs),
                attempt=1,
                stage_started_at=clock[0],
                services=services,
                log=lambda _l: None,
                now=lambda: clock[0],
            )
            aws_before, t0 = timer.total, time.perf_counter()
            result = task.run(ctx)
            spent += time.perf_counter() - t0
            aws += timer.total - aws_before
            context.update(result.context)
            outputs.update(result.outputs)
            if result.status == "RUNNING":
                clock[0] += max(result.poll_after, 0.001)
                continue
            if result.status != "SUCCEEDED":
                raise RuntimeError(f"{stage.type}.{task.name}: {result.message}")
            break
        per_task[f"{stage.type}.{task.name}"].append((spent, aws))
    return outputs


def machine() -> str:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        kb = int(next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {mem} memory, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deploys", type=int, default=20)
    parser.add_argument("--out", default="docs/benchmarks-deploy.md")
    args = parser.parse_args()

    box = start_sandbox(audit_examples=False)
    try:
        config = config_from_text(box.config_text)
        timer = AwsTimer()
        sessions = AwsSessions(config)
        sessions.add_client_hook(timer.hook)
        services = SimpleNamespace(config=config, aws=sessions)
        world = box.world
        raw = {
            "account": "sandbox",
            "region": "us-east-1",
            "stack": "web",
            "image": world.release_image_id,
            "instance_type": "t3.small",
            "subnets": world.subnets,
            "security_groups": [world.security_groups["shop-web"]],
            "target_groups": [world.target_group_arn],
            "capacity": {"min": 2, "max": 4, "desired": 2},
            "strategy": "red_black",
            "scale_down": True,
            "poll_interval": 1,
        }
        cleanup = {"account": "sandbox", "region": "us-east-1", "stack": "web", "keep": 2}
        per_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
        calls_per_deploy: list[int] = []
        by_op: Counter[str] = Counter()
        for i in range(args.deploys):
            before = Counter(sessions.calls)
            drive(Deploy(), raw, services, f"bench-{i}", timer, per_task)
            drive(CleanupServerGroups(), cleanup, services, f"bench-{i}", timer, per_task)
            delta = Counter(sessions.calls) - before
            calls_per_deploy.append(sum(delta.values()))
            by_op += delta
    finally:
        box.stop()

    rows = []
    for name, samples in per_task.items():
        own = [s - a for s, a in samples]
        rows.append(
            f"| {name} | {statistics.median(s for s, _ in samples) * 1000:.1f} | "
            f"{statistics.median(a for _, a in samples) * 1000:.1f} | {statistics.median(own) * 1000:.1f} | "
            f"{max(own) * 1000:.1f} |"
        )
    ops = "\n".join(f"| {op} | {n / args.deploys:.1f} |" for op, n in by_op.most_common())
    text = f"""# Benchmark: red/black deploys against the sandbox

Date: {dt.date.today().isoformat()}. Machine: {machine()}. Shared with other work while measured.
Command: `python bench/deploy.py --deploys {args.deploys}`.

Each iteration runs a `deploy` stage (red/black, capacity 2, scale_down) and a `cleanup_server_groups`
stage (keep 2) in the sandbox's `shop-web` cluster. Tasks are driven as the engine drives them; waits
cost nothing (fake clock). *Own time* = time inside the task calls minus time inside AWS API calls
(moto over HTTP on loopback), i.e. what Gennaker itself adds. Medians over {args.deploys} iterations (ms).
The first deploy also creates the boto3 clients (counted as own time): that is the "own (max)" outlier.

| stage.task | total | AWS | own (median) | own (max) |
|---|---|---|---|---|
{chr(10).join(rows)}

AWS API calls per deploy + cleanup: median {statistics.median(calls_per_deploy):.0f}, max {max(calls_per_deploy)}
(the count does not grow with instances: one DescribeTargetHealth per target group, never per instance).

| call | per iteration |
|---|---|
{ops}
"""
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

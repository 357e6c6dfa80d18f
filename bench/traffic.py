"""Benchmark: deploy strategies on the local provider under steady load, measured from the client.

For each of red_black, highlander, rolling_red_black (50 %, 100 %) and a rollback after red/black:
two instances of the sample application behind Gennaker's HAProxy serve version 1.0.0, a bounded
loopback load generator (``gennaker.sandbox.traffic``) sends requests the whole time, and the
strategy's actions (``cloud/strategies.py``) run through ``cloud/actions.run_action``, the code the
deploy stage runs. Recorded: requests sent, failures, p50/p99 latency in steady state and during
the cutover, the time from the new group healthy in HAProxy's view (``show stat`` sampled every
50 ms) to the first request it serves, and the drain time (each disable: drain, wait for the
group's sessions to end, then maintenance).

    python bench/traffic.py [--out docs/benchmarks-traffic.md] [--connections close keep-alive] [--only CASE ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line

from gennaker.cloud.actions import Action, run_action
from gennaker.cloud.local.haproxy import HealthCheck, LoadBalancerSpec
from gennaker.cloud.local.provider import LocalProvider
from gennaker.cloud.provider import Capacity, ServerGroupSpec
from gennaker.cloud.strategies import (
    StrategyOptions,
    initial_capacity,
    rollback_actions,
    strategy_actions,
)
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator, Response, summarize, window

LB = "shop-web"
CLUSTER = "shop-web"
CAPACITY = Capacity(2, 2, 2)
HEALTH = HealthCheck(path="/up", interval=1.0, timeout=5.0)  # the contract's defaults (Kamal's too)
POLL = 0.1  # how often the actions re-read the group while waiting (the deploy stage's poll_interval)
STEADY = 3.0  # seconds of load before the operation: the steady-state window
AFTER = 1.5  # seconds of load after it
SLOW_MS = 200  # the "slow requests" case: every answer takes this long, so drains have work to wait for


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Timed:
    """The provider, with the start and end of every call that takes servers out of rotation."""

    DRAINS = ("disable_server_group", "deregister_instances", "destroy_server_group")

    def __init__(self, inner: LocalProvider):
        self.inner = inner
        self.calls: list[tuple[str, str, float, float]] = []  # method, group, start, end

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.DRAINS:
            return attr

        def timed(group: str, *args: Any, **kw: Any) -> Any:
            start = time.monotonic()
            try:
                return attr(group, *args, **kw)
            finally:
                self.calls.append((name, group, start, time.monotonic()))

        return timed


class HealthWatch:
    """When each server first shows healthy in HAProxy's ``show stat`` (sampled every 50 ms)."""

    def __init__(self, provider: LocalProvider):
        self.provider = provider
        self.first_healthy: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for stat in self.provider.server_stats():
                if stat.healthy:
                    self.first_healthy.setdefault(stat.server, now)
                else:
                    self.first_healthy.pop(stat.server, None)  # only the latest turn to healthy counts
            self._stop.wait(0.05)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def group_healthy(self, group: str) -> float | None:
        times = [t for server, t in self.first_healthy.items() if server.rpartition("-")[0] == group]
        return min(times) if times else None


@dataclass
class Result:
    name: str
    connections: str = "close"
    sent: int = 0
    failures: int = 0
    steady: dict[str, float] = field(default_factory=dict)
    cutover: dict[str, float] = field(default_factory=dict)
    healthy_to_served: float | None = None
    drain: float = 0.0
    wrong_version_after: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def spec(provider: LocalProvider, name: str, version: str, capacity: Capacity, slow: bool = False) -> ServerGroupSpec:
    image = provider.bake(SOURCE_DIR, "sample", version).id
    env = {"APP_VERSION": version, **({"LATENCY_MS": str(SLOW_MS)} if slow else {})}
    return ServerGroupSpec(
        name=name,
        application="shop",
        image_id=image,
        instance_type="",
        subnets=[],
        capacity=capacity,
        target_groups=[LB],
        user_data=json.dumps({"command": "python3 app.py", "env": env}),
        execution_id="bench",
        stage_id=f"deploy-{name}",
    )


def run_all(provider: Any, actions: list[Action]) -> None:
    for action in actions:
        state: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while True:
            outcome = run_action(provider, action, state, time.time(), POLL)
            if outcome.done:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{action.describe()} did not finish in 60 s")
            state = outcome.state
            time.sleep(min(outcome.poll_after, POLL))


def deploy(provider: Any, opts: StrategyOptions, new: str, version: str, slow: bool = False) -> None:
    """What the deploy stage does: create (rolling: empty), wait healthy, then the strategy."""
    others = [g for g in provider.list_server_groups(cluster=CLUSTER) if g.name != new]
    capacity = initial_capacity(opts, CAPACITY, has_previous=bool(others))
    provider.create_server_group(spec(provider.inner, new, version, capacity, slow))
    if capacity.desired:
        run_all(provider, [Action("wait_healthy", new, count=capacity.desired, seconds=30)])
    run_all(provider, strategy_actions(opts, others, new, CAPACITY))


def wait_healthy(provider: LocalProvider, name: str, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group = provider.get_server_group(name)
        if group is not None and len(group.healthy_instances()) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{name} not healthy in {timeout}s")


def scenario(case: str, keep_alive: bool) -> Result:
    """One case: a strategy's name, ``rollback`` (after a red/black), or ``<strategy>-slow``."""
    slow = case.endswith("-slow")
    name = case.removesuffix("-slow")
    state = Path(tempfile.mkdtemp(prefix="gennaker-bench-traffic-"))
    lb = LoadBalancerSpec(LB, f"127.0.0.1:{free_port()}", HEALTH)
    inner = LocalProvider(state / "local", "laptop", [lb], drain_timeout=10, stop_timeout=5)
    provider = Timed(inner)
    result = Result(case + (f" ({SLOW_MS} ms requests)" if slow else ""), "keep-alive" if keep_alive else "close")
    try:
        inner.create_server_group(spec(inner, "shop-web-v001", "1.0.0", CAPACITY, slow))
        wait_healthy(inner, "shop-web-v001", 2)
        strategy = "red_black" if name == "rollback" else name
        opts = StrategyOptions(strategy=strategy, target_percentages=[50, 100], health_timeout=30)  # type: ignore[arg-type]
        if name == "rollback":
            deploy(provider, opts, "shop-web-v002", "2.0.0", slow)  # not measured: what is rolled back
            wait_healthy(inner, "shop-web-v002", 2)
            provider.calls.clear()
        target_group, target_version = ("shop-web-v001", "1.0.0") if name == "rollback" else ("shop-web-v002", "2.0.0")
        load = LoadGenerator(lb.host, lb.port, threads=4, max_requests=50_000, max_seconds=45, keep_alive=keep_alive)
        with HealthWatch(inner) as watch, load:
            time.sleep(STEADY)
            op_start = time.monotonic()
            if name == "rollback":
                run_all(provider, rollback_actions(opts, "shop-web-v001", CAPACITY, "shop-web-v002"))
            else:
                deploy(provider, opts, "shop-web-v002", "2.0.0", slow)
            op_end = time.monotonic()
            time.sleep(AFTER)
        answers = load.snapshot()
        summarize_into(
            result, answers, load.started, op_start, op_end, provider.calls, watch, target_group, target_version
        )
    except Exception as exc:  # a benchmark reports what broke and goes on to the next scenario
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        for group in inner.instances.groups():
            inner.instances.destroy(group.name, timeout=3)
        inner.haproxy.stop(timeout=3)
        shutil.rmtree(state, ignore_errors=True)
    return result


def summarize_into(
    result: Result,
    answers: list[Response],
    load_start: float,
    op_start: float,
    op_end: float,
    calls: list[tuple[str, str, float, float]],
    watch: HealthWatch,
    target_group: str,
    target_version: str,
) -> None:
    total = summarize(answers)
    result.sent, result.failures, result.seconds = total.sent, total.failures, op_end - op_start
    steady = summarize(answers, load_start + 0.5, op_start)  # the first half second warms connections up
    served = [r.sent for r in window(answers, op_start) if r.version == target_version and r.ok]
    first_served = min(served) if served else None
    drains = [c for c in calls if c[0] in ("disable_server_group", "deregister_instances") and c[1] != target_group]
    # The cutover: from the target group's first request (or the first drain) to the last drain's end.
    begin = min([t for t in [first_served] if t is not None] + [c[2] for c in drains], default=op_start)
    end = max([c[3] for c in drains], default=op_end)
    cut = summarize(answers, begin, end + 0.5)
    result.steady = {"p50": steady.p50, "p99": steady.p99, "rps": steady.rps}
    result.cutover = {"p50": cut.p50, "p99": cut.p99, "rps": cut.rps, "seconds": end - begin}
    healthy = watch.group_healthy(target_group)
    if healthy is not None and first_served is not None:
        result.healthy_to_served = first_served - healthy
    result.drain = max((c[3] - c[2] for c in drains), default=0.0)
    result.wrong_version_after = sum(1 for r in window(answers, op_end) if r.version != target_version)


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 0.1 else f"{seconds * 1000:.0f} ms"


def report(results: list[Result]) -> str:
    lines = [
        "# Benchmark: deploys under load on the local provider",
        "",
        "Written by `python bench/traffic.py`. " + machine_line(),
        "The machine is shared with other work (2 cores): latency figures are an upper bound.",
        "",
        "Two instances of the sample application (`gennaker.sample_app`) behind Gennaker's HAProxy 2.6 "
        f"(health `GET /up` every {HEALTH.interval:g} s, timeout {HEALTH.timeout:g} s), serving 1.0.0; a "
        "bounded loopback load generator (4 threads, 5 ms pause between requests; **connections** "
        "`close`: one per request, `keep-alive`: one kept open per thread) sends `GET /` through the "
        "load balancer the whole time: "
        f"{STEADY:g} s of steady state, the operation, {AFTER:g} s after. The strategy's actions run "
        f"through `cloud/actions.run_action` (the deploy stage's code) with a {POLL:g} s poll.",
        "",
        "- **cutover**: from the first request the new group serves (or the first drain) until the old "
        "group's last drain ends, plus 0.5 s; **steady**: the load before the operation.",
        "- **healthy → served**: HAProxy's `show stat` first showing a new server healthy (sampled every "
        "50 ms) to the first request answered by the new version (rollback: the old group, re-enabled); "
        "a negative figure means HAProxy sent it a request before the next sample saw it healthy.",
        "- **drain**: the longest disable (drain, wait until the group's sessions end, maintenance).",
        "- **wrong version after**: responses sent after the operation finished not from the expected version.",
        "",
        "| operation | connections | requests | failed | p50 steady | p99 steady | p50 cutover | p99 cutover | "
        "p99 ratio | healthy → served | drain | operation | wrong version after |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.errors:
            lines.append(f"| {r.name} | {r.connections} | error: {'; '.join(r.errors)} |" + " |" * 10)
            continue
        ratio = r.cutover["p99"] / r.steady["p99"] if r.steady.get("p99") else 0.0
        lines.append(
            f"| {r.name} | {r.connections} | {r.sent} | {r.failures} | {ms(r.steady['p50'])} | {ms(r.steady['p99'])} | "
            f"{ms(r.cutover['p50'])} | {ms(r.cutover['p99'])} | {ratio:.2f}x | {ms(r.healthy_to_served)} | "
            f"{ms(r.drain)} | {r.seconds:.1f} s | {r.wrong_version_after} |"
        )
    ok = [r for r in results if not r.errors]

    def verdict(missed: list[Result]) -> str:
        broken = [r for r in results if r.errors]
        if not missed and not broken:
            return "met"
        return "NOT met: " + ", ".join(f"{r.name} ({r.connections})" for r in broken + missed)

    lines += [
        "",
        "Goals: 0 failures in every case ("
        + verdict([r for r in ok if r.failures])
        + "); the switch within one health interval of healthy ("
        + verdict([r for r in ok if r.healthy_to_served is None or r.healthy_to_served > HEALTH.interval])
        + "); p99 during the cutover <= 2x steady state ("
        + verdict([r for r in ok if r.cutover["p99"] > 2 * r.steady["p99"]])
        + ").",
        "",
        "Reading the figures: the cutover windows are short (0.5 to 2.5 s, a few hundred requests), so "
        "their p99 is the third or fourth slowest answer and moves with whatever else the two shared "
        "cores do at that moment (a highlander destroys the old group's processes right after its "
        "drain, inside the window). Failures and the version served are exact: every answer is counted.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-traffic.md"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--connections", nargs="*", default=["close", "keep-alive"], choices=["close", "keep-alive"])
    parser.add_argument("--only", nargs="*", default=None, help="cases to run (default: all)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/traffic.py needs HAProxy: apt-get install haproxy", file=sys.stderr)
        return 2
    cases = args.only or ["red_black", "highlander", "rolling_red_black", "rollback"]
    results = []
    for mode in args.connections:
        for case in cases + ([] if args.only else ["red_black-slow"] if mode == "close" else []):
            r = scenario(case, mode == "keep-alive")
            print(json.dumps(dataclasses.asdict(r), default=str), flush=True)
            results.append(r)
    text = report(results)
    args.out.write_text(text)
    print(text)
    return 0 if all(not r.errors and r.failures == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: deploys through the engine on a local account under steady load, seen from the client.

For each of red_black, highlander, rolling_red_black (50 %, 100 %) and a rollback (``rollback_cluster``
after a red/black): a pipeline (bake the sample application, deploy it) puts 1.0.0 in production
as two processes behind Gennaker's HAProxy; then a bounded loopback load generator
(``gennaker.sandbox.traffic``) sends requests the whole time while a second pipeline deploys 2.0.0
(or rolls back), run by an in-process worker exactly as ``gennaker server`` runs it.

Recorded per case: requests sent, failures, p50/p99 latency in steady state and during the cutover,
the time from the new group healthy in HAProxy's view to the first request it serves, and the drain
time; HAProxy's ``show stat`` is sampled every 50 ms for the server states.

    python bench/traffic.py [--out docs/benchmarks-traffic.md] [--connections close keep-alive]
                            [--only CASE ...] [--poll 1s]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import machine_line

from gennaker.cloud.registry import provider_for
from gennaker.engine import operations as ops
from gennaker.engine import views
from gennaker.engine.runner import EngineSettings
from gennaker.runtime import Runtime, build_runtime
from gennaker.sample_app import SOURCE_DIR
from gennaker.sandbox.traffic import LoadGenerator, Response, summarize, window
from gennaker.spec.config import load_config
from gennaker.spec.durations import parse_duration

ACCOUNT = "laptop"
HEALTH_INTERVAL = 1.0  # the contract's defaults (Kamal's too): GET /up every 1 s, 5 s timeout
HEALTH_TIMEOUT = 5.0
STEADY = 3.0  # seconds of load before the operation: the steady-state window
AFTER = 1.5  # seconds of load after it
SLOW_MS = 200  # the "slow requests" case: every answer takes this long, so drains have work to wait for
SAMPLE = 0.05  # seconds between two reads of HAProxy's server states
# The engine as `gennaker server` runs it, minus the long lease: a stuck case fails in seconds.
SETTINGS = EngineSettings(lease=10.0, heartbeat=1.0, worker_ttl=5.0, poll=0.02, self_check_every=2.0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def deploy_pipeline(strategy: str, version: str, poll: float, slow: bool) -> str:
    env = f'APP_VERSION: "{version}"' + (f', LATENCY_MS: "{SLOW_MS}"' if slow else "")
    rolling = "    target_percentages: [50, 100]\n" if strategy == "rolling_red_black" else ""
    return f"""name: deploy-{version.replace(".", "-")}
application: shop
stages:
  - {{id: bake, type: bake, account: {ACCOUNT}, source: "{SOURCE_DIR}", version: "{version}"}}
  - id: deploy
    type: deploy
    requires: [bake]
    account: {ACCOUNT}
    stack: web
    image: "${{stages.bake.outputs.image_id}}"
    command: "python3 app.py"
    env: {{{env}}}
    capacity: {{min: 2, max: 2, desired: 2}}
    load_balancers: [shop-web]
    strategy: {strategy}
    health_timeout: 30s
    poll_interval: {poll}
{rolling}"""


def rollback_pipeline(poll: float) -> str:
    return f"""name: rollback
application: shop
stages:
  - {{id: rollback, type: rollback_cluster, account: {ACCOUNT}, stack: web, health_timeout: 30s, poll_interval: {poll}}}
"""


class StateWatch:
    """When each server first showed each state after ``mark()`` (HAProxy's ``show stat``, every
    50 ms): "healthy" (checks pass), "drain", "maint"."""

    def __init__(self, provider: Any):
        self.provider = provider
        self.seen: dict[tuple[str, str], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                stats = self.provider.server_stats()
            except Exception:  # a read during a reload; the next sample will do
                stats = []
            for stat in stats:
                if stat.healthy:
                    self.seen.setdefault((stat.server, "healthy"), now)
                else:
                    self.seen.pop((stat.server, "healthy"), None)  # only the latest turn to healthy counts
                if stat.status.startswith("DRAIN"):
                    self.seen.setdefault((stat.server, "drain"), now)
                if stat.status.startswith("MAINT"):
                    self.seen.setdefault((stat.server, "maint"), now)
            self._stop.wait(SAMPLE)

    def mark(self) -> None:
        """Forget drain and maint seen so far (the seed's); healthy stays (it is current state)."""
        self.seen = {k: t for k, t in self.seen.items() if k[1] == "healthy"}

    def first(self, group: str, state: str) -> float | None:
        times = [t for (server, s), t in self.seen.items() if s == state and server.rpartition("-")[0] == group]
        return min(times) if times else None

    def last(self, group: str, state: str) -> float | None:
        times = [t for (server, s), t in self.seen.items() if s == state and server.rpartition("-")[0] == group]
        return max(times) if times else None

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass
class Result:
    name: str
    connections: str = "close"
    sent: int = 0
    failures: int = 0
    steady: dict[str, float] = field(default_factory=dict)
    cutover: dict[str, float] = field(default_factory=dict)
    healthy_to_served: float | None = None
    drain: float | None = None
    drain_unseen: bool = False  # out of rotation, but no sample caught it draining: under 50 ms
    wrong_version_after: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def run_pipeline(rt: Runtime, work: Path, name: str, text: str, timeout: float = 90) -> None:
    path = work / f"{name}.yml"
    path.write_text(text)
    eid = ops.start_execution(rt.db, rt.load_pipeline(str(path)), {}, "bench", base_dir=str(work))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with rt.db.read() as conn:
            ex = views.execution_detail(conn, eid)
        if views.is_done(ex["status"]):
            if ex["status"] != "SUCCEEDED":
                failed = [f"{s['stage_id']}: {s.get('message')}" for s in ex["stages"] if s["status"] != "SUCCEEDED"]
                raise RuntimeError(f"{name} ended {ex['status']}: {'; '.join(failed)}")
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} did not finish in {timeout:g} s")


def scenario(case: str, keep_alive: bool, poll: float) -> Result:
    """One case: a strategy's name, ``rollback`` (after a red/black), or ``<strategy>-slow``."""
    slow = case.endswith("-slow")
    name = case.removesuffix("-slow")
    result = Result(case + (f" ({SLOW_MS} ms requests)" if slow else ""), "keep-alive" if keep_alive else "close")
    work = Path(tempfile.mkdtemp(prefix="gennaker-bench-traffic-"))
    lb_port = free_port()
    (work / "gennaker.yml").write_text(
        f"accounts:\n  {ACCOUNT}:\n    kind: local\n    state_dir: local\n    load_balancers:\n"
        f'      shop-web: {{listen: "127.0.0.1:{lb_port}", '
        f"health: {{path: /up, interval: {HEALTH_INTERVAL}, timeout: {HEALTH_TIMEOUT}}}}}\n"
    )
    rt = build_runtime(f"sqlite:///{work / 'g.db'}", config=load_config(str(work / "gennaker.yml")), settings=SETTINGS)
    provider = provider_for(rt.services, ACCOUNT)
    worker = rt.worker(threads=4)
    worker.start()
    try:
        run_pipeline(rt, work, "seed", deploy_pipeline("red_black", "1.0.0", poll, slow))
        if name == "rollback":
            run_pipeline(rt, work, "deploy", deploy_pipeline("red_black", "2.0.0", poll, slow))  # what is rolled back
            target_group, old_group, target_version = "shop-web-v001", "shop-web-v002", "1.0.0"
            operation = rollback_pipeline(poll)
        else:
            target_group, old_group, target_version = "shop-web-v002", "shop-web-v001", "2.0.0"
            operation = deploy_pipeline(name, "2.0.0", poll, slow)
        load = LoadGenerator(
            "127.0.0.1", lb_port, threads=4, max_requests=50_000, max_seconds=60, keep_alive=keep_alive
        )
        with StateWatch(provider) as watch, load:
            time.sleep(STEADY)
            watch.mark()
            op_start = time.monotonic()
            run_pipeline(rt, work, "operation", operation)
            op_end = time.monotonic()
            time.sleep(AFTER)
        measure(result, load.snapshot(), load.started, op_start, op_end, watch, target_group, old_group, target_version)
    except Exception as exc:  # a benchmark reports what broke and goes on to the next case
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        worker.stop()
        for group in provider.instances.groups():
            provider.instances.destroy(group.name, timeout=3)
        provider.haproxy.stop(timeout=3)
        rt.db.dispose()
        shutil.rmtree(work, ignore_errors=True)
    return result


def measure(
    result: Result,
    answers: list[Response],
    load_start: float,
    op_start: float,
    op_end: float,
    watch: StateWatch,
    target_group: str,
    old_group: str,
    target_version: str,
) -> None:
    total = summarize(answers)
    result.sent, result.failures, result.seconds = total.sent, total.failures, op_end - op_start
    steady = summarize(answers, load_start + 0.5, op_start)  # the first half second warms connections up
    served = [r.sent for r in window(answers, op_start) if r.version == target_version and r.ok]
    first_served = min(served) if served else None
    drain_start, out_of_rotation = watch.first(old_group, "drain"), watch.last(old_group, "maint")
    # The cutover: from the target group's first request (or the old group's first drain) until the
    # old group is out of rotation.
    begin = min([t for t in (first_served, drain_start) if t is not None], default=op_start)
    end = out_of_rotation if out_of_rotation is not None else op_end
    cut = summarize(answers, begin, end + 0.5)
    result.steady = {"p50": steady.p50, "p99": steady.p99, "rps": steady.rps}
    result.cutover = {"p50": cut.p50, "p99": cut.p99, "rps": cut.rps, "seconds": end - begin}
    healthy = watch.first(target_group, "healthy")
    if healthy is not None and first_served is not None:
        result.healthy_to_served = first_served - max(healthy, op_start)
    if drain_start is not None and out_of_rotation is not None:
        result.drain = out_of_rotation - drain_start
    result.drain_unseen = drain_start is None and out_of_rotation is not None
    result.wrong_version_after = sum(1 for r in window(answers, op_end) if r.version != target_version)


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds * 1000:.1f} ms" if abs(seconds) < 0.1 else f"{seconds * 1000:.0f} ms"


def report(results: list[Result], poll: float) -> str:
    lines = [
        "# Benchmark: deploys under load on the local provider",
        "",
        "Written by `python bench/traffic.py`. " + machine_line(),
        "The machine is shared with other work (2 cores): latency figures are an upper bound.",
        "",
        "Each case runs pipelines through the engine (an in-process worker, SQLite), on a local account: "
        "bake the sample application (`gennaker.sample_app`) and deploy it as two processes behind "
        f"Gennaker's HAProxy 2.6 (health `GET /up` every {HEALTH_INTERVAL:g} s, timeout {HEALTH_TIMEOUT:g} s; "
        f"the deploy's `poll_interval: {poll:g}s`). 1.0.0 serves first; a bounded loopback load generator "
        "(4 threads, 5 ms pause between requests; **connections** `close`: one per request, `keep-alive`: "
        "one kept open per thread) sends `GET /` through the load balancer the whole time: "
        f"{STEADY:g} s of steady state, the pipeline deploying 2.0.0 (rollback: `rollback_cluster` back to "
        f"1.0.0 after a red/black to 2.0.0), {AFTER:g} s after.",
        "",
        "- **cutover**: from the first request the new group serves (or the old group's first drain) "
        "until the old group is in maintenance, plus 0.5 s; **steady**: the load before the operation.",
        "- **healthy → served**: HAProxy first showing a server of the new group healthy (`show stat` "
        "every 50 ms) to the first request answered by the new version (rollback: the old group, "
        "re-enabled); a negative figure means HAProxy sent it a request before the next sample saw it.",
        "- **drain**: the old group's first server in DRAIN to its last in MAINT (no new requests, the "
        "ones in flight finish, then out of rotation).",
        "- **operation**: the deploying pipeline (bake included) from start to SUCCEEDED.",
        "- **wrong version after**: responses sent after the pipeline ended not from the expected version.",
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
        drain = "< 50 ms" if r.drain_unseen else ms(r.drain)
        lines.append(
            f"| {r.name} | {r.connections} | {r.sent} | {r.failures} | {ms(r.steady['p50'])} | "
            f"{ms(r.steady['p99'])} | {ms(r.cutover['p50'])} | {ms(r.cutover['p99'])} | {ratio:.2f}x | "
            f"{ms(r.healthy_to_served)} | {drain} | {r.seconds:.1f} s | {r.wrong_version_after} |"
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
        + verdict([r for r in ok if r.failures or r.wrong_version_after])
        + "); the switch within one health interval of healthy ("
        + verdict([r for r in ok if r.healthy_to_served is None or r.healthy_to_served > HEALTH_INTERVAL])
        + "); p99 during the cutover <= 2x steady state ("
        + verdict([r for r in ok if r.cutover["p99"] > 2 * r.steady["p99"]])
        + ").",
        "",
        "Reading the figures: the cutover windows are short (about a second, a few hundred requests), "
        "so their p99 is one of the three or four slowest answers and moves with whatever else the two "
        "shared cores do at that moment (the worker baking and starting processes, a highlander "
        "stopping the old ones). Failures and the version served are exact: every answer is counted.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "docs" / "benchmarks-traffic.md"
    parser.add_argument("--out", type=Path, default=default_out)
    parser.add_argument("--connections", nargs="*", default=["close", "keep-alive"], choices=["close", "keep-alive"])
    parser.add_argument("--only", nargs="*", default=None, help="cases to run (default: all)")
    parser.add_argument("--poll", default="1s", help="the deploy stages' poll_interval (default 1s)")
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        print("bench/traffic.py needs HAProxy: apt-get install haproxy", file=sys.stderr)
        return 2
    poll = parse_duration(args.poll)
    cases = args.only or ["red_black", "highlander", "rolling_red_black", "rollback"]
    results = []
    for mode in args.connections:
        for case in cases + ([] if args.only or mode != "close" else ["red_black-slow"]):
            r = scenario(case, mode == "keep-alive", poll)
            print(json.dumps(dataclasses.asdict(r), default=str), flush=True)
            results.append(r)
    text = report(results, poll)
    args.out.write_text(text)
    print(text)
    return 0 if all(not r.errors and r.failures == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

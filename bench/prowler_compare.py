"""Benchmark one simulated account: `gennaker audit` against Prowler on the same endpoint (both with
their default retries), and the cost of one AWS service that keeps failing (503) with and without
Gennaker's retry budget per (account, region, service).

Simulated AWS is a moto server in its own process, seeded as bench/audit.py seeds it (smaller by
default). Each audit runs in a child process of its own, so wall time and peak RSS are that
process's; Prowler is run from its own virtualenv (``--prowler``) with ``AWS_ENDPOINT_URL`` pointing
every client at the simulator.

    python bench/prowler_compare.py [--prowler /tmp/prowler-venv/bin/prowler] [--write]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import REGIONS, seed, start_moto
from machine import machine_line, write_section

FAILING = "rds"  # the service made to answer 503 on every request in the "one failing service" runs
UNAVAILABLE = (
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>Service is"
    b" unavailable</Message></Error><RequestId>bench</RequestId></ErrorResponse>"
)


# ---- child: one Gennaker audit, printed as one JSON line ----------------------------------------


def child(url: str, fail: str | None, budget: bool) -> None:
    from botocore.awsrequest import AWSResponse

    from gennaker.cloud.aws.session import AwsSessions, RetryBudget
    from gennaker.ops.audit import run_audit
    from gennaker.ops.settings import OpsSettings
    from gennaker.spec.config import Account, Config

    class Body:
        def stream(self, **_kw: Any) -> Any:
            yield UNAVAILABLE

    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def hook(client: Any) -> None:
        service = client.meta.service_model.service_name

        def send(request: Any, **_kw: Any) -> AWSResponse | None:
            with lock:
                attempts[service] += 1
            if service == fail:
                return AWSResponse(request.url, 503, {"Content-Type": "text/xml"}, Body())
            return None

        client.meta.events.register("before-send", send)

    cfg = Config(accounts={"bench": Account(regions=list(REGIONS), endpoint_url=url, environment="prod")})
    sessions = AwsSessions(cfg, retry_budget=RetryBudget() if budget else None)  # default: 8 adaptive retries
    sessions.add_client_hook(hook)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.monotonic()
    result = run_audit(sessions, OpsSettings())
    wall = time.monotonic() - started
    statuses = Counter(f.status for f in result.findings)
    ledger = sessions.retry_ledger
    out = {
        "wall": wall,
        "rss_before": rss_before,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checks": len(result.checks),
        "findings": len(result.findings),
        "statuses": dict(statuses),
        "resources": len(result.snapshot.resources),
        "attempts": sum(attempts.values()),
        "failing_attempts": attempts[fail] if fail else 0,
        "failing_unknown": sum(
            1 for f in result.findings if f.status == "UNKNOWN" and fail is not None and f"{fail}." in f.message
        ),
        "refused": sum(ledger.exhausted.values()) if ledger else 0,
        "failures": sorted({f"{f.type}: {f.code}" for f in result.snapshot.failures}),
        "reason": next(
            (f.message[:240] for f in result.findings if fail and f.status == "UNKNOWN" and f"{fail}." in f.message),
            "",
        ),
    }
    print(json.dumps(out))


# ---- parent ---------------------------------------------------------------------------------------


def timed_child(args: list[str], env: dict[str, str], timeout: float) -> tuple[float, float, str, str, int]:
    """Run a child: its wall time, its peak RSS in MB (wait4's rusage of that process alone), its
    output and exit code; killed after ``timeout`` seconds."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, env=env)
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        wall = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        return (
            wall,
            usage.ru_maxrss / 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            proc.returncode,
        )


def gennaker(url: str, fail: str | None, budget: bool, env: dict[str, str]) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", url, "--budget" if budget else "--no-budget"]
    if fail:
        cmd += ["--fail", fail]
    wall, rss, out, err, rc = timed_child(cmd, env, timeout=1200)
    if rc != 0:
        return {"error": f"exit {rc}: {err.strip().splitlines()[-1] if err.strip() else ''}", "process_wall": wall}
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    data.update(process_wall=wall, process_rss=rss)
    return data


def prowler(path: str | None, url: str, env: dict[str, str]) -> dict[str, Any]:
    exe = path or shutil.which("prowler")
    if not exe or not Path(exe).exists():
        return {"error": "Prowler is not installed (python -m venv /tmp/prowler-venv && "
                         "/tmp/prowler-venv/bin/pip install prowler; pass --prowler PATH)"}  # fmt: skip
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env).stdout.strip()
    outdir = tempfile.mkdtemp(prefix="prowler-bench-")
    penv = {**env, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": REGIONS[0]}
    cmd = [exe, "aws", "--region", *REGIONS, "-M", "csv", "--output-directory", outdir, "--no-banner"]
    wall, rss, out, err, rc = timed_child(cmd, penv, timeout=1800)
    # The findings file is the top-level CSV (``;``-separated); compliance/ holds one per framework.
    csvs = list(Path(outdir).glob("*.csv"))
    findings: Counter[str] = Counter()
    for f in csvs:
        with f.open(newline="", errors="replace") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                findings[row.get("STATUS") or "?"] += 1
    scan = re.search(r"(\d+)/\d+ \[100%\] in ([0-9:.]+)", out)
    shutil.rmtree(outdir, ignore_errors=True)
    tail = (err.strip() or out.strip()).splitlines()[-3:]
    # Prowler exits 3 when it found failing checks: a finished scan, not an error.
    finished = rc in (0, 3) and bool(csvs)
    return {
        "version": version,
        "rc": rc,
        "wall": wall,
        "rss": rss,
        "findings": dict(findings),
        "checks": int(scan.group(1)) if scan else None,
        "scan": scan.group(2) if scan else None,  # its own progress bar: the checks, without start-up and outputs
        "finished": finished,
        "tail": tail if not finished else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", metavar="URL")
    ap.add_argument("--fail")
    ap.add_argument("--budget", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--instances", type=int, default=50)
    ap.add_argument("--buckets", type=int, default=20)
    ap.add_argument("--volumes", type=int, default=20)
    ap.add_argument("--albs", type=int, default=2)
    ap.add_argument("--dbs", type=int, default=2)
    ap.add_argument("--prowler", default="/tmp/prowler-venv/bin/prowler")
    ap.add_argument("--skip-prowler", action="store_true")
    ap.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    if args.child:
        child(args.child, args.fail, args.budget)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT")}
    proc, url = start_moto()
    runs: dict[str, dict[str, Any]] = {}
    try:
        t0 = time.monotonic()
        seed(url, args.instances, args.buckets, args.volumes, args.albs, args.dbs)
        seed_s = time.monotonic() - t0
        cases = [
            ("gennaker, default retries (budget on)", None, True),
            ("gennaker, default retries, budget off", None, False),
            (f"gennaker, {FAILING} answers 503, budget on", FAILING, True),
            (f"gennaker, {FAILING} answers 503, budget off", FAILING, False),
        ]
        for name, fail, budget in cases:
            runs[name] = gennaker(url, fail, budget, env)
            print(name, json.dumps(runs[name]), flush=True)
        pr = {"error": "skipped (--skip-prowler)"} if args.skip_prowler else prowler(args.prowler, url, env)
        print("prowler", json.dumps(pr), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    body = report(runs, pr, args, seed_s)
    print(body)
    if args.write:
        write_section(
            f"Single-account audit against Prowler (bench/prowler_compare.py), {time.strftime('%Y-%m-%d')}", body
        )


def report(runs: dict[str, dict[str, Any]], pr: dict[str, Any], args: argparse.Namespace, seed_s: float) -> str:
    import moto

    lines = [
        machine_line(),
        "",
        f"Simulated account: moto server {moto.__version__} in its own process, {len(REGIONS)} regions "
        f"({', '.join(REGIONS)}), seeded as bench/audit.py does with {args.instances} instances, {args.buckets} "
        f"buckets, {args.volumes} volumes, {args.albs} ALBs with ASGs, {args.dbs} RDS instances ({seed_s:.0f} s). "
        "Each run is its own process; peak RSS is that process's (wait4), wall time the audit's and the "
        "whole process's (imports and start-up included). Gennaker: `AwsSessions` defaults (8 adaptive "
        "retries; retry budget 3 retries / 10 s per account, region and service).",
        "",
        "| run | audit wall | process wall | peak RSS | AWS attempts | findings | failing service |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | {r['process_wall']:.1f} s | | | | |")
            continue
        st = r["statuses"]
        found = ", ".join(f"{k} {v}" for k, v in sorted(st.items()))
        failing = (
            f"{r['failing_attempts']} attempts, {r['failing_unknown']} UNKNOWN findings, {r['refused']} retries refused"
            if r["failing_attempts"]
            else f"{r['refused']} retries refused"
        )
        lines.append(
            f"| {name} | {r['wall']:.1f} s | {r['process_wall']:.1f} s | {r['process_rss']:.0f} MB | "
            f"{r['attempts']} | {r['findings']} ({found}) | {failing} |"
        )
    if "error" in pr:
        lines.append(f"| Prowler | not run: {pr['error']} | | | | | |")
    else:
        found = ", ".join(f"{k} {v}" for k, v in sorted(pr["findings"].items()))
        state = "" if pr["finished"] else f" (did not finish: exit {pr['rc']}: {' / '.join(pr['tail'])[:300]})"
        scan = f"{pr['scan']} (its progress bar)" if pr.get("scan") else ""
        lines.append(
            f"| {pr['version']}, {pr.get('checks') or 'all'} checks, default retries{state} | {scan} | "
            f"{pr['wall']:.1f} s | {pr['rss']:.0f} MB | | {sum(pr['findings'].values())} ({found}) | |"
        )
    sample = next((r for r in runs.values() if r.get("reason") and r.get("refused")), None)
    lines += ["", "Collection failures in every run (APIs simulated AWS lacks; their checks say UNKNOWN):", ""]
    base = next(iter(runs.values()))
    lines += [f"- {f}" for f in base.get("failures", [])]
    if sample:
        lines += ["", f"An UNKNOWN finding of the failing service, budget on: `{sample['reason']}`"]
    lines += [
        "",
        "Notes:",
        "- Budget off is botocore's retries alone (9 attempts a call with back-off): the APIs simulated AWS",
        "  lacks answer 500 on every call, so even the clean account waits about a minute, and a service",
        "  answering 503 costs 9 attempts on every call. With the budget a failing (account, region, service)",
        "  spends at most 3 retries in a row, then each call is tried once and fails at once with the last",
        "  AWS error; its checks say UNKNOWN with that reason, the others' results are unchanged.",
        "- The remaining wall time with the budget is mostly those 3 retries' back-off (botocore's own,",
        "  up to 1 + 2 + 4 s) on the keys that fail, and the simulator serving the calls on 2 shared cores.",
        "- Prowler runs its own checks (security, many more than Gennaker's readiness checks) and writes",
        "  compliance outputs after the scan; its wall time includes its start-up. Its findings are counted",
        "  from its findings CSV by STATUS.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

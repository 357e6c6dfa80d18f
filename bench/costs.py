"""Benchmark `gennaker costs --by application` on a year of daily FOCUS 1.0 data: 50 accounts x
30 services x 20 applications (≈ 11 million rows, generated with DuckDB) in parquet files in
simulated S3 (moto server in a separate process, its memory not counted). Runs the real command as
a subprocess, cold (files downloaded through boto3) and warm (the local file cache), and reports
wall time and the command's peak RSS.

    python bench/costs.py [--days 365] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parent))
from audit import start_moto
from machine import machine_line, write_section

ACCOUNTS, SERVICES, APPS = 50, 30, 20


def generate(out: Path, days: int, first: date) -> tuple[int, list[Path]]:
    """One parquet file per month, as Data Exports writes them; service 29 carries no tags (shared)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE focus AS
        SELECT
            (DATE '{first}' + d.i * INTERVAL 1 DAY) AS ChargePeriodStart,
            (DATE '{first}' + (d.i + 1) * INTERVAL 1 DAY) AS ChargePeriodEnd,
            round(0.05 + ((a.i * 31 + s.i * 7 + p.i * 3 + d.i) % 97) / 10.0, 4) AS BilledCost,
            round(0.9 * (0.05 + ((a.i * 31 + s.i * 7 + p.i * 3 + d.i) % 97) / 10.0), 4) AS EffectiveCost,
            lpad(CAST(100000000000 + a.i AS VARCHAR), 12, '0') AS SubAccountId,
            'Service ' || s.i AS ServiceName,
            CASE WHEN a.i % 2 = 0 THEN 'us-east-1' ELSE 'eu-west-1' END AS RegionId,
            'Usage' AS ChargeCategory,
            CASE WHEN s.i = {SERVICES - 1} THEN MAP {{}}::MAP(VARCHAR, VARCHAR)
                 ELSE MAP {{'gennaker:application': 'app-' || p.i,
                           'gennaker:environment': CASE WHEN a.i < 25 THEN 'prod' ELSE 'dev' END}} END AS Tags
        FROM range({days}) d(i), range({ACCOUNTS}) a(i), range({SERVICES}) s(i), range({APPS}) p(i)
    """)
    rows = int(con.execute("SELECT count(*) FROM focus").fetchone()[0])  # type: ignore[index]
    files = []
    for (month,) in con.execute(
        "SELECT DISTINCT strftime(ChargePeriodStart, '%Y-%m') FROM focus ORDER BY 1"
    ).fetchall():
        path = out / f"focus-{month}.parquet"
        con.execute(
            f"COPY (SELECT * FROM focus WHERE strftime(ChargePeriodStart, '%Y-%m') = '{month}' "
            "ORDER BY ChargePeriodStart) TO ? (FORMAT parquet)",
            [str(path)],
        )
        files.append(path)
    con.close()
    return rows, files


def timed(cmd: list[str], env: dict[str, str], out_file: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (of this child alone, from wait4) and its stdout."""
    start = time.perf_counter()
    with out_file.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    text = out_file.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{cmd} failed: {text[-2000:]}")
    return wall, usage.ru_maxrss / 1024, text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--no-write", action="store_true", help="print the figures, do not edit docs/")
    parser.add_argument("--generate", help=argparse.SUPPRESS)  # internal: write the files into this directory
    parser.add_argument("--first", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        rows, _ = generate(Path(args.generate), args.days, date.fromisoformat(args.first))
        print(rows)
        return
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")

    moto, url = start_moto()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            first = date.today().replace(day=1) - timedelta(days=args.days)
            t0 = time.perf_counter()
            # In a child process: DuckDB's 11 million rows would otherwise stay in this process, and a
            # forked child's peak RSS (wait4) starts from its parent's.
            gen_out = subprocess.run(
                [sys.executable, __file__, "--generate", str(work), "--days", str(args.days), "--first", str(first)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows, files = int(gen_out.split()[0]), sorted(work.glob("focus-*.parquet"))
            gen = time.perf_counter() - t0
            size = sum(f.stat().st_size for f in files) / 1e6
            env = dict(os.environ)
            s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=url)
            s3.create_bucket(Bucket="billing")
            for f in files:
                s3.upload_file(str(f), "billing", f"focus/data/{f.name}")
                f.unlink()
            env["COLUMNS"] = "140"
            (work / "gennaker.yml").write_text(
                f"accounts:\n  payer:\n    regions: [us-east-1]\n    endpoint_url: {url}\n"
                "costs:\n  source: focus\n  uri: s3://billing/focus/\n  account: payer\n"
            )
            env.update(
                {
                    "GENNAKER_FOCUS_CACHE": str(work / "cache"),
                    "XDG_DATA_HOME": str(work / "data"),
                }
            )
            cmd = [sys.executable, "-m", "gennaker", "--config", str(work / "gennaker.yml"), "--db", str(work / "g.db")]
            results = []
            for label, extra in (
                (f"cold ({len(files)} files downloaded from S3), --period 30d", ["--period", "30d"]),
                ("warm (local file cache), --period 30d", ["--period", "30d"]),
                ("warm, --period month --granularity daily --format json", ["--period", "month", "--format", "json"]),
                ("warm, --by account --period 2026-06", ["--period", "2026-06"]),
            ):
                by = ["--by", "account"] if "--by account" in label else ["--by", "application"]
                wall, rss, out = timed([*cmd, "costs", *by, *extra], env, work / "out.txt")
                results.append((label, wall, rss))
                print(f"{label}: {wall:.2f} s, {rss:.0f} MB", flush=True)
            print(out[:2000])
    finally:
        moto.terminate()
        moto.wait()

    lines = [
        machine_line(),
        "",
        f"Data: {rows:,} FOCUS rows ({args.days} days x {ACCOUNTS} accounts x {SERVICES} services x {APPS} "
        f"applications), {len(files)} monthly parquet files, {size:.0f} MB, generated by DuckDB in {gen:.1f} s, "
        "served by moto S3. Each figure is one run of the real command (a new process: start-up included). "
        "Goal: ≤ 5 s and ≤ 500 MB.",
        "",
        "| `gennaker costs --by application` | wall | peak RSS |",
        "|---|---|---|",
        *[f"| {label} | {wall:.2f} s | {rss:.0f} MB |" for label, wall, rss in results],
    ]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("Costs (bench/costs.py)", body)


if __name__ == "__main__":
    main()

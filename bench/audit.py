"""Benchmark `gennaker audit` on a simulated account: 1,000 instances, 200 buckets, 200 volumes,
20 ALBs with ASGs and 20 RDS instances across two regions (moto server in a separate process, so
its memory is not counted). Reports wall time, peak memory and API calls per service.

    python bench/audit.py [--instances 1000] [--out docs/benchmarks-audit.md]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import socket
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import boto3
import httpx

REGIONS = ("us-east-1", "us-west-2")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def seed(url: str, instances: int, buckets: int, volumes: int, albs: int, dbs: int) -> None:
    per_region = {REGIONS[0]: 0.6, REGIONS[1]: 0.4}
    for region, share in per_region.items():
        c = lambda svc, r=region: boto3.client(svc, region_name=r, endpoint_url=url)  # noqa: E731
        ec2, elbv2, asg, rds = c("ec2"), c("elbv2"), c("autoscaling"), c("rds")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i * 16}.0/20", AvailabilityZone=f"{region}{z}")["Subnet"][
                "SubnetId"
            ]
            for i, z in enumerate("ab")
        ]
        n_alb = int(albs * share)
        asg_instances = n_alb * 2
        plain = int(instances * share) - asg_instances
        for i in range(0, plain, 100):
            n = min(100, plain - i)
            ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=n,
                MaxCount=n,
                InstanceType="t3.micro",
                SubnetId=subnets[(i // 100) % 2],
                TagSpecifications=[
                    {"ResourceType": "instance", "Tags": [{"Key": "Application", "Value": f"app-{i // 100}"}]}
                ],
            )
        for i in range(int(volumes * share)):
            vol = ec2.create_volume(AvailabilityZone=f"{region}a", Size=8)["VolumeId"]
            if i % 2:
                ec2.create_snapshot(VolumeId=vol)
        for i in range(n_alb):
            lb = elbv2.create_load_balancer(Name=f"alb-{i}", Subnets=subnets)["LoadBalancers"][0]
            tg = elbv2.create_target_group(Name=f"tg-{i}", Protocol="HTTP", Port=80, VpcId=vpc)["TargetGroups"][0]
            elbv2.create_listener(
                LoadBalancerArn=lb["LoadBalancerArn"],
                Protocol="HTTP",
                Port=80,
                DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}],
            )
            ec2.create_launch_template(
                LaunchTemplateName=f"lt-{i}", LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}
            )
            asg.create_auto_scaling_group(
                AutoScalingGroupName=f"asg-{i}",
                LaunchTemplate={"LaunchTemplateName": f"lt-{i}"},
                MinSize=2,
                MaxSize=4,
                DesiredCapacity=2,
                VPCZoneIdentifier=",".join(subnets),
                TargetGroupARNs=[tg["TargetGroupArn"]],
                HealthCheckType="ELB",
            )
        for i in range(int(dbs * share)):
            rds.create_db_instance(
                DBInstanceIdentifier=f"db-{i}",
                DBInstanceClass="db.t3.micro",
                Engine="postgres",
                MasterUsername="u",
                MasterUserPassword="password1",
                AllocatedStorage=20,
                MultiAZ=bool(i % 2),
            )
    s3 = boto3.client("s3", region_name=REGIONS[0], endpoint_url=url)
    for i in range(buckets):
        s3.create_bucket(Bucket=f"bench-bucket-{i:04d}")
        if i % 2:
            s3.put_bucket_versioning(Bucket=f"bench-bucket-{i:04d}", VersioningConfiguration={"Status": "Enabled"})


def machine() -> str:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = (
        next(
            (
                int(line.split()[1])
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            ),
            0,
        )
        if Path("/proc/meminfo").exists()
        else 0
    )
    return f"{os.cpu_count()} CPUs ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--buckets", type=int, default=200)
    ap.add_argument("--volumes", type=int, default=200)
    ap.add_argument("--albs", type=int, default=20)
    ap.add_argument("--dbs", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tracemalloc", action="store_true", help="also report the peak Python heap")
    args = ap.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    proc, url = start_moto()
    try:
        t0 = time.monotonic()
        seed(url, args.instances, args.buckets, args.volumes, args.albs, args.dbs)
        seed_s = time.monotonic() - t0

        from gennaker.cloud.aws.session import AwsSessions
        from gennaker.ops.audit import run_audit
        from gennaker.ops.settings import OpsSettings
        from gennaker.spec.config import Account, Config

        cfg = Config(accounts={"bench": Account(regions=list(REGIONS), endpoint_url=url, environment="prod")})
        # Two APIs simulated AWS lacks answer 500 (Incident Manager) or are unreachable (s3control's
        # account-id host prefix); with 8 adaptive attempts botocore backs off ~60 s on them. Real AWS
        # answers both, so the bench allows 2 attempts (no throttling in simulated AWS either).
        sessions = AwsSessions(cfg, max_attempts=2)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.tracemalloc:  # slows Python down several-fold: measure wall time without it
            tracemalloc.start()
        t1 = time.monotonic()
        result = run_audit(sessions, OpsSettings())
        wall = time.monotonic() - t1
        peak = tracemalloc.get_traced_memory()[1] if args.tracemalloc else 0
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    by_service: Counter[str] = Counter()
    for call, n in sessions.calls.items():
        by_service[call.split(".", 1)[0]] += n
    counts = Counter(r.type for r in result.snapshot.resources)
    slowest = ", ".join(f"{k} {v:.1f} s" for k, v in list(result.snapshot.stats["slowest"].items())[:4])
    lines = [
        "# Audit benchmark (`bench/audit.py`)",
        "",
        f"- Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine()} (shared with other work while measured)",
        f"- Simulated AWS: moto server {__import__('moto').__version__} in a separate process, two regions "
        f"({', '.join(REGIONS)}); seeding took {seed_s:.0f} s",
        f"- Scene: {args.instances} instances, {args.buckets} buckets, {args.volumes} volumes, {args.albs} ALBs "
        f"with ASGs, {args.dbs} RDS instances",
        "",
        "| Measure | Value | Goal |",
        "|---|---|---|",
        f"| Wall time of the audit (collect + {len(result.checks)} checks) | {wall:.1f} s | <= 15 s |",
        *([f"| Peak Python heap during the audit (tracemalloc) | {peak / 1024 / 1024:.0f} MB | |"] if peak else []),
        f"| of which collection (parallel, {OpsSettings().max_workers} workers) | "
        f"{result.snapshot.stats['duration_s']:.1f} s | |",
        f"| Peak RSS of the process (ru_maxrss; {rss_before:.0f} MB before the audit) | {rss:.0f} MB | <= 300 MB |",
        f"| Resources collected | {len(result.snapshot.resources)} | |",
        f"| Slowest collections | {slowest} | |",
        f"| Findings | {len(result.findings)} (score {result.summary['score']:g}) | |",
        f"| API calls | {sum(sessions.calls.values())} | grow with pages, not resources |",
        "",
        "API calls per service:",
        "",
        "| Service | Calls |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, n in sorted(by_service.items())],
        "",
        "Calls per operation (the per-resource ones are the ones AWS offers no batch form for: S3 bucket",
        "configuration, target health, classic ELB attributes):",
        "",
        "| Operation | Calls |",
        "|---|---|",
        *[f"| {c} | {n} |" for c, n in sorted(sessions.calls.items())],
        "",
        "Resources per type:",
        "",
        "| Type | Count |",
        "|---|---|",
        *[f"| {t} | {n} |" for t, n in sorted(counts.items())],
        "",
        "Collection failures (APIs simulated AWS lacks; their checks report UNKNOWN):",
        "",
        *[f"- {f.account}/{f.region} {f.type}: {f.code}" for f in result.snapshot.failures],
        "",
        "For comparison (operations.md): Prowler took 105 s and 1.43 GB for all its checks on a",
        "50-instance simulated account on this machine.",
        "",
        "Notes:",
        "- Calls grow with pages, except where AWS has no batch API: S3 bucket configuration (7 calls per",
        "  bucket: location, versioning, lifecycle, public access block, encryption, tagging, website), target",
        "  health (one per target group), classic ELB attributes/instance health, DynamoDB backups, Backup plans.",
        "- Most of the wall time is the simulated AWS server serialising large answers (describe_instances of",
        "  600 instances, 1,400 S3 calls) on a 2-CPU machine it shares with the audit; the checks themselves",
        "  take well under a second.",
        "- The bench allows 2 attempts per call (see the comment in bench/audit.py): two APIs simulated AWS",
        "  lacks would otherwise spend ~60 s in botocore back-off; they end as UNKNOWN findings either way.",
        "- Peak memory is ru_maxrss of the audit process (the simulated AWS server runs in another",
        "  process); `--tracemalloc` adds the Python heap peak but slows the run several-fold.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()

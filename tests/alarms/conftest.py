"""Alarm fixtures: the simulated shop (moto over HTTP) with a standalone instance, a database and its
replica, a topic Gennaker listens on (with a subscriber), and a gennaker.yml naming all of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import AuditResult, run_audit
from gennaker.ops.settings import OpsSettings
from gennaker.sandbox.seed import ShopWorld, seed_shop
from gennaker.spec.config import Config, config_from_text
from tests.local.conftest import haproxy_binary
from tests.ops.scene import run, tags

__all__ = ["haproxy_binary"]  # the local conditions' test needs Debian's haproxy (skips without it)

MON_CHECKS = ["mon.alarms.coverage", "mon.alarms.notify"]


@dataclass
class Shop:
    world: ShopWorld
    config: Config
    config_path: Path
    sessions: AwsSessions
    topic: str
    instance: str  # a standalone instance (not in the group), criticality=high
    db: str
    replica: str
    aws: Callable[..., Any]

    def audit(self) -> AuditResult:
        return run_audit(self.sessions, OpsSettings(), checks=MON_CHECKS, accounts=["main"])

    def statuses(self, result: AuditResult) -> dict[tuple[str, str], str]:
        return {(f.check_id, f.resource_id): f.status for f in result.findings}


def config_text(endpoint: str, extra: str = "") -> str:
    return (
        f"accounts:\n  main:\n    regions: [us-east-1]\n    endpoint_url: {endpoint}\n    environment: prod\n"
        "ops:\n  max_workers: 4\n" + extra
    )


@pytest.fixture
def shop(moto_endpoint: str, tmp_path: Path) -> Shop:
    def aws(service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, region_name=region, endpoint_url=moto_endpoint)

    sns, ec2, rds = aws("sns"), aws("ec2"), aws("rds")
    topic = sns.create_topic(Name="gennaker-alarms")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="email", Endpoint="oncall@example.com")
    text = config_text(moto_endpoint, f"alarms:\n  topic: {topic}\n")
    path = tmp_path / "gennaker.yml"
    path.write_text(text)
    config = config_from_text(text, str(path))
    sessions = AwsSessions(config, max_attempts=2)
    world = seed_shop(sessions, "main", "us-east-1")
    instance = run(ec2, world.subnets[0], Application="shop", criticality="high")[0]
    rds.create_db_instance(
        DBInstanceIdentifier="shop-db",
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        AllocatedStorage=100,
        MasterUsername="shop",
        MasterUserPassword="not-a-real-password",
        Tags=tags(Application="shop", criticality="high"),
    )
    rds.create_db_instance_read_replica(
        DBInstanceIdentifier="shop-db-replica", SourceDBInstanceIdentifier="shop-db", Tags=tags(Application="shop")
    )
    return Shop(world, config, path, sessions, topic, instance, "shop-db", "shop-db-replica", aws)

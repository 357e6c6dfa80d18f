"""Ops fixtures: one simulated account (moto over HTTP), raw boto3 clients for setting the scene,
and a helper that collects and audits only what the checks under test need."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops.audit import AuditResult, run_audit
from gennaker.ops.findings import Finding
from gennaker.ops.settings import OpsSettings
from gennaker.spec.config import Account, Config

ACCOUNT_ID = "123456789012"  # moto's default account


@pytest.fixture
def config(moto_endpoint: str) -> Config:
    return Config(
        accounts={
            "main": Account(
                regions=["us-east-1"], endpoint_url=moto_endpoint, dr_region="us-west-2", environment="prod"
            )
        }
    )


@pytest.fixture
def sessions(config: Config) -> AwsSessions:
    return AwsSessions(config, max_attempts=2)


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[..., Any]:
    def make(service: str, region: str = "us-east-1") -> Any:
        return boto3.client(service, region_name=region, endpoint_url=moto_endpoint)

    return make


@pytest.fixture
def audit(sessions: AwsSessions) -> Callable[..., AuditResult]:
    def run(*patterns: str, settings: OpsSettings | None = None, **kw: Any) -> AuditResult:
        return run_audit(sessions, settings or OpsSettings(), checks=list(patterns) or None, **kw)

    return run


def statuses(result: AuditResult, check_id: str) -> dict[str, str]:
    """resource id (ARN or id) -> status, for one check."""
    return {f.resource_id: f.status for f in result.findings if f.check_id == check_id}


def only(result: AuditResult, check_id: str) -> list[Finding]:
    return [f for f in result.findings if f.check_id == check_id]

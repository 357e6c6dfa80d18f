"""One bounded retry budget per (account, region, service): a service that keeps failing costs its
budget once, not botocore's whole back-off ladder on every call. Simulated AWS over HTTP; the
faults are answered by a botocore ``before-send`` hook (inside botocore's retry loop, so its
retry handlers see them exactly as they would see AWS's), and attempts are counted there."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from gennaker.cloud.aws.session import AwsSessions, RetryBudget, RetryBudgetExhausted, RetryLedger
from gennaker.errors import CloudError
from gennaker.ops.audit import run_audit
from gennaker.ops.registry import TYPES
from gennaker.ops.settings import OpsSettings
from gennaker.spec.config import Account, Config
from tests.conftest import free_port

UNAVAILABLE = (
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>Service is"
    b" unavailable</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)
KEY = ("main", "us-east-1", "rds")


class _Body:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


class Faults:
    """Counts every attempt per (region, service) and answers 503 for the (region, service) pairs
    in ``failing`` (all regions when the region is ``*``)."""

    def __init__(self, *failing: tuple[str, str]):
        self.failing = set(failing)
        self.attempts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def hook(self, client: Any) -> None:
        service, region = client.meta.service_model.service_name, client.meta.region_name
        client.meta.events.register("before-send", lambda request, **_kw: self._send(region, service, request))

    def _send(self, region: str, service: str, request: Any) -> AWSResponse | None:
        with self._lock:
            self.attempts[(region, service)] += 1
        if (region, service) in self.failing or ("*", service) in self.failing:
            return AWSResponse(request.url, 503, {"Content-Type": "text/xml"}, _Body(UNAVAILABLE))
        return None


@pytest.fixture
def config(moto_endpoint: str) -> Config:
    return Config(accounts={"main": Account(regions=["us-east-1", "us-west-2"], endpoint_url=moto_endpoint)})


def budgeted(config: Config, faults: Faults, budget: RetryBudget | None = None) -> AwsSessions:
    sessions = AwsSessions(config, retry_budget=budget or RetryBudget(retries=3))  # botocore's 8 retries
    sessions.add_client_hook(faults.hook)
    return sessions


def test_a_failing_service_costs_its_budget_once_across_many_calls(config: Config) -> None:
    faults = Faults(("us-east-1", "rds"))
    sessions = budgeted(config, faults)
    rds = sessions.client("main", "us-east-1", "rds")
    errors = []
    for _ in range(20):
        with pytest.raises(CloudError) as err:
            rds.describe_db_instances()
        errors.append(err.value)
    # 20 first attempts and 3 retries in all; without the budget: 20 x 9 attempts, minutes of back-off.
    assert faults.attempts[("us-east-1", "rds")] == 20 + 3
    assert sessions.retry_ledger is not None and sessions.retry_ledger.retries[KEY] == 3
    last = errors[-1]
    assert last.code == "ServiceUnavailable"  # the AWS error's code: callers that read codes keep working
    assert "retry budget for rds in main/us-east-1 is exhausted (3 retries" in str(last)
    assert "last error: ServiceUnavailable: Service is unavailable" in str(last)
    assert "DescribeDBInstances" in str(last) or "describe_db_instances" in str(last)
    # Other keys are not affected: the same service in another region, another service here.
    assert sessions.client("main", "us-west-2", "rds").describe_db_instances()["DBInstances"] == []
    assert sessions.client("main", "us-east-1", "ec2").describe_vpcs()["Vpcs"]
    assert faults.attempts[("us-west-2", "rds")] == 1 and faults.attempts[("us-east-1", "ec2")] == 1


def test_a_success_refills_the_budget(config: Config) -> None:
    faults = Faults(("us-east-1", "rds"))
    sessions = budgeted(config, faults)
    rds = sessions.client("main", "us-east-1", "rds")
    for _ in range(3):
        with pytest.raises(CloudError, match="retry budget"):
            rds.describe_db_instances()
    faults.failing.clear()  # the service is back: the first attempt answers, nothing waits
    before = faults.attempts[("us-east-1", "rds")]
    assert rds.describe_db_instances()["DBInstances"] == []
    assert faults.attempts[("us-east-1", "rds")] == before + 1
    assert sessions.retry_ledger is not None and sessions.retry_ledger.state(KEY) is None
    faults.failing.add(("us-east-1", "rds"))  # failing again: a whole budget of retries again
    before = faults.attempts[("us-east-1", "rds")]
    with pytest.raises(CloudError, match=r"exhausted \(3 retries"):
        rds.describe_db_instances()
    assert faults.attempts[("us-east-1", "rds")] == before + 4


def test_a_transient_fault_is_still_retried_to_success(config: Config) -> None:
    faults = Faults()
    sessions = budgeted(config, faults)
    rds = sessions.client("main", "us-east-1", "rds")
    remaining = [2]  # two 503s, then the real answer

    def flaky(request: Any, **_kw: Any) -> AWSResponse | None:
        if remaining[0]:
            remaining[0] -= 1
            return AWSResponse(request.url, 503, {"Content-Type": "text/xml"}, _Body(UNAVAILABLE))
        return None

    rds.raw.meta.events.register_first("before-send", flaky)
    assert rds.describe_db_instances()["DBInstances"] == []
    assert faults.attempts[("us-east-1", "rds")] == 3
    assert sessions.retry_ledger is not None and sessions.retry_ledger.state(KEY) is None


def test_concurrent_calls_share_one_budget(config: Config) -> None:
    faults = Faults(("us-east-1", "rds"))
    sessions = budgeted(config, faults)
    rds = sessions.client("main", "us-east-1", "rds")

    def call(_: int) -> str:
        try:
            rds.describe_db_instances()
        except CloudError as exc:
            return str(exc)
        return "answered"

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(64)))
    assert all("ServiceUnavailable" in r for r in results)
    assert faults.attempts[("us-east-1", "rds")] <= 64 + 3
    assert sessions.retry_ledger is not None and sessions.retry_ledger.retries[KEY] == 3


def test_an_unreachable_endpoint_costs_its_budget_once() -> None:
    # Nothing listens on the port: every attempt is a connection error, which botocore retries.
    config = Config(accounts={"down": Account(regions=["eu-west-1"], endpoint_url=f"http://127.0.0.1:{free_port()}")})
    faults = Faults()
    sessions = budgeted(config, faults)
    sqs = sessions.client("down", "eu-west-1", "sqs")
    for _ in range(10):
        with pytest.raises(CloudError) as err:
            sqs.list_queues()
    assert faults.attempts[("eu-west-1", "sqs")] == 10 + 3
    assert err.value.code == "EndpointConnectionError"
    assert "retry budget for sqs in down/eu-west-1 is exhausted" in str(err.value)
    assert "last error: EndpointConnectionError: Could not connect" in str(err.value)


def test_the_time_budget_and_the_refill() -> None:
    now = [0.0]
    ledger = RetryLedger(RetryBudget(retries=100, seconds=5, refill_after=60), clock=lambda: now[0])
    ledger.failed(KEY, "Throttling", "Throttling: slow down", final=False)  # a retry: allowed
    now[0] = 4.0
    ledger.failed(KEY, "Throttling", "Throttling: slow down", final=False)
    now[0] = 5.5  # 5 s since the first failure in a row: no more retries, whatever the count
    with pytest.raises(RetryBudgetExhausted, match=r"2 retries in 5.5 s\); last error: Throttling: slow down"):
        ledger.failed(KEY, "Throttling", "Throttling: slow down", final=False)
    other = ("main", "us-east-1", "ec2")
    ledger.failed(other, "Throttling", "x", final=False)  # another key has its own budget
    now[0] = 70.0  # a minute without failures: the streak is forgotten
    ledger.failed(KEY, "Throttling", "Throttling: slow down", final=False)
    assert ledger.state(KEY) == (1, "Throttling: slow down")


def test_without_a_budget_botocore_retries_every_call(config: Config) -> None:
    # What the budget saves: with it off, every failing call spends botocore's whole ladder. A short
    # ladder (2 retries) keeps the back-off waits of this test short.
    faults = Faults(("us-east-1", "rds"))
    sessions = AwsSessions(config, max_attempts=2, retry_budget=None)
    sessions.add_client_hook(faults.hook)
    rds = sessions.client("main", "us-east-1", "rds")
    for _ in range(3):
        with pytest.raises(CloudError) as err:
            rds.describe_db_instances()
        assert "retry budget" not in str(err.value)
    assert faults.attempts[("us-east-1", "rds")] == 3 * 3


def test_an_audit_with_one_failing_service_reports_unknown_and_spends_one_budget(
    config: Config, moto_endpoint: str
) -> None:
    boto3.client("ec2", region_name="us-east-1", endpoint_url=moto_endpoint).run_instances(
        ImageId="ami-12c6146b", MinCount=2, MaxCount=2, InstanceType="t3.micro"
    )
    settings = OpsSettings()
    clean = Faults()
    baseline = run_audit(budgeted(config, clean), settings)
    faults = Faults(("*", "rds"))
    sessions = budgeted(config, faults)
    result = run_audit(sessions, settings)

    rds_types = [t for t in TYPES if t.service == "rds"]
    rds_lists = len(rds_types) * 2  # one list call per type and region; none answers, so no detail calls
    rds_attempts = faults.attempts[("us-east-1", "rds")] + faults.attempts[("us-west-2", "rds")]
    # One budget per region, and one attempt per call beyond it (botocore's alone: 9 per call).
    assert rds_attempts <= rds_lists + 2 * 3, faults.attempts
    # Every other service made the same requests as in the audit without the failure; left out are
    # the APIs the simulator itself answers 500 (Cost Explorer's ListCostAllocationTags, Incident
    # Manager): their own budgets are spent by the clock (10 s), so their retries vary run to run.
    simulator_fails = {"rds", "ce", "ssm-incidents"}
    others = lambda f: sorted((k, n) for k, n in f.attempts.items() if k[1] not in simulator_fails)  # noqa: E731
    assert others(faults) == others(clean)

    failed = {(f.region, f.type): f for f in result.snapshot.failures if f.type.startswith("rds.")}
    assert set(failed) == {(r, t.name) for r in ("us-east-1", "us-west-2") for t in rds_types}
    assert all(f.code == "ServiceUnavailable" and "retry budget for rds" in f.message for f in failed.values())
    rds_checks = {f.check_id for f in result.findings if f.status == "UNKNOWN" and "rds." in f.message}
    assert rds_checks, "the checks that need RDS report UNKNOWN"
    for f in result.findings:
        if f.check_id in rds_checks and f.status == "UNKNOWN" and "rds." in f.message:
            assert "could not be collected" in f.message and "retry budget for rds in main/" in f.message
    assert not any(f.type.startswith("rds.") for f in baseline.snapshot.failures)

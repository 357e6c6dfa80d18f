"""The CloudWatch source against simulated AWS (moto server) with data the test publishes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.metrics import AnalysisConfig, Label, MetricError, MetricQuery, Scope, Series, SourceSettings, judge
from gennaker.metrics.cloudwatch import CloudWatchSource, parse_query, period_for
from gennaker.metrics.judge import fetch_interval
from gennaker.metrics.sources import build_sources
from gennaker.spec.config import Account, Config
from tests.conftest import free_port

REGION = "us-east-1"
TG = {"base": "targetgroup/shop-web-v001/0123456789abcdef", "canary": "targetgroup/shop-web-v002/fedcba9876543210"}
LB = "app/shop-web/1111111111111111"
BASELINE = Scope("shop-web-v001", REGION, account="sim", target_group=TG["base"], load_balancer=LB)
CANARY = Scope("shop-web-v002", REGION, account="sim", target_group=TG["canary"], load_balancer=LB)
CPU = "namespace=AWS/EC2 metric=CPUUtilization stat=Average"
ERRORS = "namespace=AWS/ApplicationELB metric=HTTPCode_Target_5XX_Count stat=Sum dimensions=target_group"
POINTS = 20


class CallCounter:
    """Counts GetMetricData requests as botocore sends them (every page is one)."""

    def __init__(self) -> None:
        self.calls = 0

    def hook(self, raw: Any) -> None:
        raw.meta.events.register("before-call", self._before_call)

    def _before_call(self, model: Any, **_: Any) -> None:
        if model.name == "GetMetricData":
            self.calls += 1


@pytest.fixture
def counted(moto_endpoint: str) -> Iterator[tuple[AwsSessions, CallCounter]]:
    config = Config(accounts={"sim": Account(endpoint_url=moto_endpoint, regions=[REGION])})
    sessions = AwsSessions(config, max_attempts=2)
    counter = CallCounter()
    sessions.add_client_hook(counter.hook)
    yield sessions, counter


@pytest.fixture
def published(moto_endpoint: str) -> tuple[datetime, datetime]:
    """20 samples 10 s apart for both groups: the same CPU, 5xx only in the canary."""
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_endpoint)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(seconds=10 * POINTS)
    for i in range(POINTS):
        at = start + timedelta(seconds=10 * i + 1)
        for scope, errors in ((BASELINE, 0.0), (CANARY, 5.0)):
            cloudwatch.put_metric_data(
                Namespace="AWS/EC2",
                MetricData=[
                    {
                        "MetricName": "CPUUtilization",
                        "Dimensions": [{"Name": "AutoScalingGroupName", "Value": scope.server_group}],
                        "Timestamp": at,
                        "Value": 40.0 + i % 3,
                    }
                ],
            )
            cloudwatch.put_metric_data(
                Namespace="AWS/ApplicationELB",
                MetricData=[
                    {
                        "MetricName": "HTTPCode_Target_5XX_Count",
                        "Dimensions": [
                            {"Name": "TargetGroup", "Value": scope.target_group},
                            {"Name": "LoadBalancer", "Value": LB},
                        ],
                        "Timestamp": at,
                        "Value": errors,
                    }
                ],
            )
    return start, end


def clients(sessions: AwsSessions) -> Any:
    return lambda account, region: sessions.client(account, region, "cloudwatch")


def test_every_metric_of_both_groups_in_one_call(
    counted: tuple[AwsSessions, CallCounter], published: tuple[datetime, datetime]
) -> None:
    sessions, counter = counted
    start, end = published
    source = CloudWatchSource(clients(sessions))
    queries = [MetricQuery("cpu", CPU), MetricQuery("errors", ERRORS)]
    fetched = source.fetch(queries, [BASELINE, CANARY], start, end, 10)
    assert counter.calls == 1
    assert sessions.calls["cloudwatch.get_metric_data"] == 1
    base_cpu, canary_errors = fetched[BASELINE.server_group]["cpu"], fetched[CANARY.server_group]["errors"]
    assert isinstance(base_cpu, Series) and isinstance(canary_errors, Series)
    assert list(base_cpu.values) == [40.0 + i % 3 for i in range(POINTS)]
    assert list(canary_errors.values) == [5.0] * POINTS
    assert fetched[BASELINE.server_group]["errors"] == Series(canary_errors.timestamps, (0.0,) * POINTS)


def test_judge_published_data_through_the_registry(
    counted: tuple[AwsSessions, CallCounter], published: tuple[datetime, datetime]
) -> None:
    sessions, counter = counted
    analysis = AnalysisConfig.model_validate(
        {
            "lifetime": "10m",
            "step": "10s",
            "metrics": [
                {"name": "cpu", "source": "cloudwatch", "query": CPU},
                {"name": "errors", "source": "cloudwatch", "query": ERRORS, "direction": "increase", "critical": True},
            ],
        }
    )
    sources = build_sources(SourceSettings(aws=sessions))
    baseline, canary = fetch_interval(sources, analysis, BASELINE, CANARY, *published)
    judgement = judge(analysis, baseline, canary)
    assert counter.calls == 1  # one call per source per interval
    assert {m.name: m.label for m in judgement.metrics} == {"cpu": Label.PASS, "errors": Label.HIGH}
    assert judgement.score == 0.0 and judgement.reasons == ["critical metric failed: errors (High)"]


def test_a_scope_without_a_target_group_fails_only_that_metric(
    counted: tuple[AwsSessions, CallCounter], published: tuple[datetime, datetime]
) -> None:
    sessions, counter = counted
    bare = Scope(CANARY.server_group, REGION, account="sim")
    queries = [MetricQuery("cpu", CPU), MetricQuery("errors", ERRORS)]
    fetched = CloudWatchSource(clients(sessions)).fetch(queries, [bare], *published, 10)[bare.server_group]
    assert isinstance(fetched["cpu"], Series) and len(fetched["cpu"].values) == POINTS
    assert fetched["errors"] == MetricError("server group shop-web-v002 has no target group to select it by")
    assert counter.calls == 1


def test_more_queries_than_one_call_takes_are_split(
    counted: tuple[AwsSessions, CallCounter], published: tuple[datetime, datetime]
) -> None:
    sessions, counter = counted
    queries = [MetricQuery(f"cpu{i}", CPU) for i in range(260)]  # x 2 groups = 520 > 500
    fetched = CloudWatchSource(clients(sessions)).fetch(queries, [BASELINE, CANARY], *published, 10)
    assert counter.calls == 2
    assert all(isinstance(s, Series) and len(s.values) == POINTS for s in fetched[CANARY.server_group].values())


def test_unreadable_cloudwatch_is_an_error_for_every_metric() -> None:
    config = Config(accounts={"down": Account(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1)})
    sessions = AwsSessions(config, max_attempts=1)
    end = datetime.now(UTC)
    scope = Scope("shop-web-v002", REGION, account="down")
    fetched = CloudWatchSource(clients(sessions)).fetch(
        [MetricQuery("cpu", CPU)], [scope], end - timedelta(minutes=5), end, 60
    )
    error = fetched[scope.server_group]["cpu"]
    assert isinstance(error, MetricError) and "cloudwatch in down/us-east-1 cannot be read" in error.reason
    no_account = Scope("shop-web-v002", REGION)
    fetched = build_sources(SourceSettings(aws=sessions))["cloudwatch"].fetch(
        [MetricQuery("cpu", CPU)], [no_account], end - timedelta(minutes=5), end, 60
    )
    assert "names no account" in fetched[no_account.server_group]["cpu"].reason  # type: ignore[union-attr]


class PagingClient:
    """moto never paginates GetMetricData: this stand-in answers in two NextToken pages."""

    def __init__(self) -> None:
        self.tokens: list[str | None] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        token = kwargs.get("NextToken")
        self.tokens.append(token)
        t0 = datetime(2026, 12, 1, tzinfo=UTC)
        if token is None:
            results = [{"Id": "m0", "Timestamps": [t0], "Values": [1.0], "StatusCode": "PartialData"}]
            return {"MetricDataResults": results, "NextToken": "page-2"}
        results = [
            {"Id": "m0", "Timestamps": [t0 + timedelta(minutes=1)], "Values": [2.0], "StatusCode": "Complete"},
            {"Id": "m1", "StatusCode": "Forbidden", "Messages": [{"Code": "Forbidden", "Value": "no access"}]},
        ]
        return {"MetricDataResults": results}


def test_pages_are_joined_and_failed_results_are_errors() -> None:
    client = PagingClient()
    source = CloudWatchSource(lambda account, region: client)
    end = datetime(2026, 12, 1, 1, tzinfo=UTC)
    queries = [MetricQuery("cpu", CPU), MetricQuery("mem", "namespace=CWAgent metric=mem_used_percent")]
    fetched = source.fetch(queries, [BASELINE], end - timedelta(hours=1), end, 60)[BASELINE.server_group]
    assert client.tokens == [None, "page-2"]
    t0 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    assert fetched["cpu"] == Series((t0, t0 + 60), (1.0, 2.0))
    assert fetched["mem"] == MetricError("CloudWatch answered Forbidden: no access")


def test_queries_and_periods() -> None:
    assert parse_query("namespace='My App' metric=Latency stat=p99").namespace == "My App"
    source = CloudWatchSource(lambda account, region: None)
    assert source.check("namespace=AWS/EC2") == "the query names no metric"
    assert source.check("AWS/EC2 CPUUtilization") is not None
    assert (
        source.check("namespace=a metric=b dimensions=vpc")
        == "dimensions must be one of asg, target_group, asg+target_group"
    )
    assert [period_for(s) for s in (0.5, 1, 4, 10, 11, 45, 60, 61, 300)] == [1, 1, 5, 10, 30, 60, 60, 120, 300]


def test_a_server_groups_own_target_group_scopes_its_alb_metrics(moto_endpoint: str) -> None:
    """A group with a share of its own (a canary's) says which TargetGroup and LoadBalancer select
    its ALB metrics; figures published under them come back for it alone, in the same one call
    as its AutoScalingGroupName metrics."""
    from gennaker.cloud.aws.options import AwsDeployOptions
    from gennaker.cloud.aws.provider import AwsProvider
    from gennaker.cloud.provider import Capacity, ServerGroupSpec
    from gennaker.sandbox.seed import seed_shop

    config = Config(accounts={"sim": Account(endpoint_url=moto_endpoint, regions=[REGION])})
    sessions = AwsSessions(config, max_attempts=2)
    world = seed_shop(sessions, "sim", REGION)
    provider = AwsProvider(sessions, "sim", REGION)
    options = AwsDeployOptions(instance_type="t3.small", subnets=world.subnets, target_groups=[world.target_group_arn])
    spec = ServerGroupSpec(
        name="shop-web-canary-v001",
        application="shop",
        image=world.release_image_id,
        capacity=Capacity(1, 1, 1),
        provider_options=options,
        separate_traffic=True,
    )
    group = provider.create_server_group(provider.prepare_server_group(spec))
    scope = Scope(group.name, REGION, account="sim", **group.metric_scope)
    production = provider.get_server_group("shop-web-v001")
    assert production is not None and production.metric_scope == {}  # it shares its target group
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=moto_endpoint)
    end = datetime.now(UTC).replace(microsecond=0)
    assert scope.target_group and scope.load_balancer
    dims = [
        {"Name": "TargetGroup", "Value": scope.target_group},
        {"Name": "LoadBalancer", "Value": scope.load_balancer},
    ]
    for i in range(5):
        at = end - timedelta(seconds=5 - i)
        cloudwatch.put_metric_data(
            Namespace="AWS/ApplicationELB",
            MetricData=[{"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": dims, "Timestamp": at, "Value": i}],
        )
    before = sessions.calls["cloudwatch.get_metric_data"]
    fetched = CloudWatchSource(clients(sessions)).fetch(
        [MetricQuery("errors", ERRORS), MetricQuery("cpu", CPU)], [scope], end - timedelta(seconds=10), end, 1
    )[group.name]
    assert sessions.calls["cloudwatch.get_metric_data"] - before == 1
    assert fetched["errors"] == Series(fetched["errors"].timestamps, (0.0, 1.0, 2.0, 3.0, 4.0))  # type: ignore[union-attr]
    assert fetched["cpu"] == Series()  # nothing published for its ASG: no samples (Nodata), not an error

"""Throttling and server errors on a share of AWS calls: deploys finish or roll back cleanly."""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.retries.bucket import TokenBucket
from botocore.retries.standard import ExponentialBackoff

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox.seed import ShopWorld
from gennaker.spec.config import Config
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import deploy_raw, launch_templates, run_stage, serving_groups

EC2_THROTTLE = (
    b"<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded."
    b"</Message></Error></Errors><RequestID>fault</RequestID></Response>"
)
EC2_500 = (
    b"<Response><Errors><Error><Code>InternalError</Code><Message>An internal error has occurred"
    b"</Message></Error></Errors><RequestID>fault</RequestID></Response>"
)
QUERY_500 = (
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>internal"
    b"</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)
QUERY_THROTTLE = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
    b"</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
)


class _Raw:
    def __init__(self, body: bytes):
        self.body = body

    def stream(self, **_kwargs: Any) -> Any:
        yield self.body


class Faults:
    """A botocore ``before-send`` hook: answers a share of requests itself with a throttling error
    or a 500, before they reach the server. It sits inside botocore's retry loop, so the adaptive
    retry mode sees the faults exactly as it would see AWS's."""

    def __init__(self, share: float, seed: int):
        self.share = share
        self.rng = random.Random(seed)
        self.injected = 0

    def hook(self, client: Any) -> None:
        service = client.meta.service_model.service_name
        client.meta.events.register("before-send", lambda request, **_kw: self._maybe(service, request))

    def _maybe(self, service: str, request: Any) -> AWSResponse | None:
        if self.rng.random() >= self.share:
            return None
        self.injected += 1
        if self.rng.random() < 0.5:
            body = EC2_500 if service == "ec2" else QUERY_500
            return AWSResponse(request.url, 500, {"Content-Type": "text/xml"}, _Raw(body))
        body = EC2_THROTTLE if service == "ec2" else QUERY_THROTTLE
        return AWSResponse(request.url, 400, {"Content-Type": "text/xml"}, _Raw(body))


def test_deploys_under_faults_finish_or_roll_back_cleanly(
    world: ShopWorld, config: Config, provider: AwsProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore's backoff is real time (up to seconds per retry): keep the retry mode, shrink its waits,
    # and let the adaptive mode's client-side rate limiter (a token bucket that sleeps) pass at once.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    monkeypatch.setattr(TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    faults = Faults(share=0.3, seed=7)
    sessions = AwsSessions(config, max_attempts=3)  # few attempts, so some calls fail for good
    sessions.add_client_hook(faults.hook)
    services = SimpleNamespace(config=config, aws=sessions)
    outcomes = []
    for i in range(16):
        before = serving_groups(provider)
        raw = deploy_raw(world, max_remaining_server_groups=3, destroy_on_rollback=True)
        run = run_stage(Deploy(), raw, services, execution_id=f"faults-{i}")
        groups = sorted(g.name for g in provider.list_server_groups(cluster="shop-web"))
        if run.status == "SUCCEEDED":
            outcomes.append("deployed")
            assert serving_groups(provider) == [run.outputs["server_group"]]
        else:
            # Failed: either before anything was created, or rolled back to the previous group.
            outcomes.append("rolled back" if "rolled back" in (run.message or "") else "failed early")
            assert serving_groups(provider) == before, run.message
            if run.outputs.get("server_group"):
                assert "rolled back" in (run.message or ""), run.message
        assert launch_templates(provider) == groups, f"orphans after: {run.message}"
    assert faults.injected > 50
    assert "deployed" in outcomes, outcomes


def test_rollbacks_under_faults_end_with_the_old_group_serving(
    world: ShopWorld, config: Config, provider: AwsProvider, bad_images: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    monkeypatch.setattr(TokenBucket, "acquire", lambda self, amount=1, block=True: True)
    bad_images.add(world.base_image_id)
    faults = Faults(share=0.3, seed=11)
    sessions = AwsSessions(config, max_attempts=3)
    sessions.add_client_hook(faults.hook)
    services = SimpleNamespace(config=config, aws=sessions)
    for i in range(6):
        raw = deploy_raw(world, image=world.base_image_id, destroy_on_rollback=True, health_timeout=5)
        run = run_stage(Deploy(), raw, services, execution_id=f"bad-{i}")
        assert run.status == "FAILED"
        assert serving_groups(provider) == ["shop-web-v001"], run.message
        groups = sorted(g.name for g in provider.list_server_groups(cluster="shop-web"))
        assert groups == ["shop-web-v001"] and launch_templates(provider) == groups, run.message
    assert faults.injected > 20

"""Failures: unhealthy new instances, rollback, and a worker killed at every AWS call."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.deploy import Deploy
from tests.cloud.conftest import (
    ACCOUNT,
    REGION,
    Clock,
    WorkerKilled,
    cluster_state,
    deploy_raw,
    launch_templates,
    run_stage,
    serving_groups,
)


@pytest.mark.parametrize("destroy", [False, True])
def test_unhealthy_deploy_fails_within_timeout_and_rolls_back(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, bad_images: set[str], destroy: bool
) -> None:
    bad_images.add(world.base_image_id)
    clock = Clock()
    start = clock.t
    run = run_stage(
        Deploy(),
        deploy_raw(world, image=world.base_image_id, health_timeout=120, destroy_on_rollback=destroy),
        services,
        clock=clock,
    )
    assert run.status == "FAILED"
    assert "only 0 of 2 instances healthy after 120s" in (run.message or "")
    assert "rolled back" in (run.message or "")
    assert clock.t - start <= 120 + 2  # failed at its timeout, not later
    state = cluster_state(provider)
    assert serving_groups(provider) == ["shop-web-v001"]
    assert state["shop-web-v001"]["enabled"] and state["shop-web-v001"]["serving"] == 2
    if destroy:
        assert set(state) == {"shop-web-v001"} and launch_templates(provider) == ["shop-web-v001"]
    else:
        assert not state["shop-web-v002"]["enabled"]
    assert run.outputs["server_group"] == "shop-web-v002"


def test_no_rollback_when_disabled(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, bad_images: set[str]
) -> None:
    bad_images.add(world.base_image_id)
    run = run_stage(Deploy(), deploy_raw(world, image=world.base_image_id, rollback_on_failure=False), services)
    assert run.status == "FAILED" and "rollback_on_failure is off" in (run.message or "")
    state = cluster_state(provider)
    assert state["shop-web-v002"]["enabled"]  # left as it is, for someone to look at


def test_failed_deploy_retried_makes_a_new_group(
    world: ShopWorld, provider: AwsProvider, services: SimpleNamespace, bad_images: set[str]
) -> None:
    """A stage retry (fresh context, same execution) must not adopt the group that was rolled back."""
    bad_images.add(world.base_image_id)
    assert run_stage(Deploy(), deploy_raw(world, image=world.base_image_id), services).status == "FAILED"
    run = run_stage(Deploy(), deploy_raw(world), services)
    assert run.status == "SUCCEEDED", run.message
    assert run.outputs["server_group"] == "shop-web-v003"
    assert serving_groups(provider) == ["shop-web-v003"]


def _kill_after_call(sessions: AwsSessions, at: int) -> Any:
    """Kill the worker right after the ``at``-th AWS call succeeded (its response is lost)."""
    counter = {"n": 0}

    def after_call(**_kwargs: Any) -> None:
        counter["n"] += 1
        if counter["n"] == at:
            raise WorkerKilled(f"killed after call {at}")

    for service in ("autoscaling", "ec2", "elbv2"):
        sessions.client(ACCOUNT, REGION, service).raw.meta.events.register("after-call", after_call)
    return counter, after_call


def test_worker_killed_at_every_call_never_duplicates(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    raw = deploy_raw(world, max_remaining_server_groups=2)
    # Two deploys reach the steady state (two groups; each deploy adds one and destroys one).
    for i in (2, 3):
        assert run_stage(Deploy(), raw, services, execution_id=f"warm-{i}").status == "SUCCEEDED"
    before = sum(sessions.calls.values())
    assert run_stage(Deploy(), raw, services, execution_id="count").status == "SUCCEEDED"
    calls = sum(sessions.calls.values()) - before
    assert calls > 10
    version = 4
    for at in range(1, calls + 1):
        version += 1
        counter, handler = _kill_after_call(sessions, at)
        run = run_stage(Deploy(), raw, services, execution_id=f"kill-{at}")
        for service in ("autoscaling", "ec2", "elbv2"):
            sessions.client(ACCOUNT, REGION, service).raw.meta.events.unregister("after-call", handler)
        assert counter["n"] >= at
        assert run.kills == 1, f"kill at call {at} did not happen"
        assert run.status == "SUCCEEDED", f"kill at call {at}: {run.message}"
        new = f"shop-web-v{version:03d}"
        assert run.outputs["server_group"] == new, f"kill at call {at}"
        state = cluster_state(provider)
        assert set(state) == {f"shop-web-v{version - 1:03d}", new}, f"kill at call {at}: {sorted(state)}"
        assert launch_templates(provider) == sorted(state), f"kill at call {at}"
        assert serving_groups(provider) == [new]


def test_worker_killed_at_every_call_of_a_rollback(
    world: ShopWorld,
    provider: AwsProvider,
    sessions: AwsSessions,
    services: SimpleNamespace,
    bad_images: set[str],
) -> None:
    bad_images.add(world.base_image_id)
    raw = deploy_raw(world, image=world.base_image_id, destroy_on_rollback=True, health_timeout=5)
    before = sum(sessions.calls.values())
    assert run_stage(Deploy(), raw, services, execution_id="count").status == "FAILED"
    calls = sum(sessions.calls.values()) - before
    for at in range(1, calls + 1):
        counter, handler = _kill_after_call(sessions, at)
        run = run_stage(Deploy(), raw, services, execution_id=f"kill-{at}")
        for service in ("autoscaling", "ec2", "elbv2"):
            sessions.client(ACCOUNT, REGION, service).raw.meta.events.unregister("after-call", handler)
        assert counter["n"] >= at and run.kills == 1
        assert run.status == "FAILED" and "rolled back" in (run.message or ""), f"kill at call {at}: {run.message}"
        assert set(cluster_state(provider)) == {"shop-web-v001"}, f"kill at call {at}"
        assert launch_templates(provider) == ["shop-web-v001"], f"kill at call {at}"
        assert serving_groups(provider) == ["shop-web-v001"]

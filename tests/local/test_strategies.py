"""The strategies written once above the provider, run by the same executor, on the local provider:
real processes behind real HAProxy, with traffic the whole time."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gennaker.cloud.actions import Action, run_action
from gennaker.cloud.local.haproxy import LoadBalancerSpec
from gennaker.cloud.local.provider import LocalProvider
from gennaker.cloud.provider import Capacity
from gennaker.cloud.strategies import StrategyOptions, initial_capacity, rollback_actions, strategy_actions
from tests.local.loadgen import Traffic, failures
from tests.local.test_provider import spec, wait_healthy

CAPACITY = Capacity(2, 2, 2)


@pytest.fixture
def provider(haproxy_binary: str, tmp_path: Path, lb_spec: LoadBalancerSpec) -> Iterator[LocalProvider]:
    p = LocalProvider(tmp_path / "local", "laptop", [lb_spec], drain_timeout=5, stop_timeout=3)
    try:
        yield p
    finally:
        for group in p.instances.groups():
            p.instances.destroy(group.name, timeout=2)
        p.haproxy.stop(timeout=2)


def run_all(provider: LocalProvider, actions: list[Action]) -> None:
    for action in actions:
        state: dict[str, object] = {}
        deadline = time.monotonic() + 60
        while True:
            outcome = run_action(provider, action, state, time.time(), 0.1)
            if outcome.done:
                break
            assert time.monotonic() < deadline, f"{action.describe()} did not finish"
            state = outcome.state
            time.sleep(min(outcome.poll_after, 0.1))


def deploy(provider: LocalProvider, opts: StrategyOptions, new: str, version: str) -> float:
    """What the deploy stage does, minus the engine: create, wait healthy, run the strategy.

    Returns the time the previous group was fully out of rotation (the switch)."""
    others = [g for g in provider.list_server_groups(cluster="shop-web") if g.name != new]
    capacity = initial_capacity(opts, CAPACITY, has_previous=bool(others))
    # The strategy's first capacity (rolling red/black starts empty).
    provider.create_server_group(dataclasses.replace(spec(provider, new, version), capacity=capacity))
    if capacity.desired:
        run_all(provider, [Action("wait_healthy", new, count=capacity.desired, seconds=30)])
    run_all(provider, strategy_actions(opts, others, new, CAPACITY))
    return time.monotonic()


@pytest.mark.parametrize("strategy", ["red_black", "highlander", "rolling_red_black"])
def test_strategy_switches_with_no_failed_request(
    provider: LocalProvider, lb_spec: LoadBalancerSpec, strategy: str
) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    wait_healthy(provider, "shop-web-v001", 2)
    opts = StrategyOptions(strategy=strategy, target_percentages=[50, 100], health_timeout=30)  # type: ignore[arg-type]
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=60) as traffic:
        traffic.wait_for(40)
        switch = deploy(provider, opts, "shop-web-v002", "2.0.0")
        traffic.wait_for(40)
    assert failures(traffic.answers) == []
    assert {a.body for a in traffic.answers if a.sent > switch} == {"2.0.0"}
    old = provider.get_server_group("shop-web-v001")
    if strategy == "highlander":
        assert old is None
    else:
        assert old is not None and old.disabled and not old.in_rotation
    new = provider.get_server_group("shop-web-v002")
    assert new is not None and new.enabled and len(new.healthy_instances()) == 2


def test_rollback_after_red_black_brings_the_old_version_back(
    provider: LocalProvider, lb_spec: LoadBalancerSpec
) -> None:
    provider.create_server_group(spec(provider, "shop-web-v001", "1.0.0"))
    wait_healthy(provider, "shop-web-v001", 2)
    opts = StrategyOptions(strategy="red_black", health_timeout=30)
    with Traffic(lb_spec.host, lb_spec.port, max_seconds=60) as traffic:
        deploy(provider, opts, "shop-web-v002", "2.0.0")
        traffic.wait_for(40)
        run_all(provider, rollback_actions(opts, "shop-web-v001", CAPACITY, "shop-web-v002"))
        back = time.monotonic()
        traffic.wait_for(40)
    assert failures(traffic.answers) == []
    assert {a.body for a in traffic.answers if a.sent > back} == {"1.0.0"}
    assert "2.0.0" in {a.body for a in traffic.answers}

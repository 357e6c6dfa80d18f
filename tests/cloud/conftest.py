"""Fixtures for the cloud layer: the ``shop`` world in simulated AWS, and a small stage driver that
runs a stage's tasks the way the engine does (persisting context between calls) with a fake clock,
so waits cost nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.sandbox.seed import ShopWorld, seed_shop
from gennaker.sandbox.server import config_text
from gennaker.spec.config import Config, config_from_text
from gennaker.stages.base import StageType, TaskContext, TaskResult

ACCOUNT = "sandbox"
REGION = "us-east-1"


@pytest.fixture
def config(moto_endpoint: str) -> Config:
    return config_from_text(config_text(moto_endpoint))


@pytest.fixture
def sessions(config: Config) -> AwsSessions:
    return AwsSessions(config, max_attempts=3)


@pytest.fixture
def services(config: Config, sessions: AwsSessions) -> SimpleNamespace:
    return SimpleNamespace(config=config, aws=sessions)


@pytest.fixture
def world(sessions: AwsSessions) -> ShopWorld:
    return seed_shop(sessions, ACCOUNT, REGION)


@pytest.fixture
def provider(sessions: AwsSessions) -> AwsProvider:
    return AwsProvider(sessions, ACCOUNT, REGION)


class WorkerKilled(Exception):
    """Raised inside a task to simulate a worker dying mid-task (nothing it returned is saved)."""


@dataclass
class Clock:
    t: float = 1_000_000.0

    def now(self) -> float:
        return self.t


@dataclass
class StageRun:
    status: str
    message: str | None
    outputs: dict[str, Any]
    context: dict[str, Any]
    logs: list[str]
    tasks_run: list[str] = field(default_factory=list)
    kills: int = 0


def run_stage(
    stage: StageType,
    raw: dict[str, Any],
    services: Any,
    application: str = "shop",
    execution_id: str = "ex-1",
    clock: Clock | None = None,
    on_call: Callable[[str, int, dict[str, Any]], None] | None = None,
    max_calls: int = 2000,
) -> StageRun:
    """Run every task of ``stage`` until the stage ends, as the engine would.

    RUNNING results are polled again after advancing the fake clock by their poll_after; a task
    that raises WorkerKilled is re-run with the context saved before it (a restarted worker).
    ``on_call(task_name, call_number, context)`` runs before each task call (tests hook in here).
    """
    config = stage.Config.model_validate({"id": "deploy", "type": stage.type, **raw})
    clock = clock or Clock()
    context: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    logs: list[str] = []
    run = StageRun("RUNNING", None, outputs, context, logs)
    started = clock.now()
    calls = 0
    for task in stage.tasks(config):
        while True:
            calls += 1
            assert calls < max_calls, f"stage did not finish after {max_calls} task calls"
            ctx = TaskContext(
                execution_id=execution_id,
                stage_id=config.id,
                pipeline="p",
                application=application,
                trigger={},
                config=config,
                context=dict(context),
                outputs=dict(outputs),
                attempt=1,
                stage_started_at=started,
                services=services,
                log=logs.append,
                now=clock.now,
            )
            if on_call:
                on_call(task.name, calls, context)
            run.tasks_run.append(task.name)
            try:
                result: TaskResult = task.run(ctx)
            except WorkerKilled:
                run.kills += 1
                continue
            context.update(result.context)
            outputs.update(result.outputs)
            if result.status == "RUNNING":
                clock.t += max(result.poll_after, 0.001)
                continue
            if result.status != "SUCCEEDED":
                run.status, run.message = result.status, result.message
                return run
            break
    run.status = "SUCCEEDED"
    return run


# --- reading simulated AWS -----------------------------------------------------------------------


def cluster_state(provider: AwsProvider, cluster: str = "shop-web") -> dict[str, dict[str, Any]]:
    """What tests assert on: per server group, capacity, enabled, suspended processes, instances,
    the instances serving (registered and healthy in every target group), and tags."""
    state = {}
    for g in provider.list_server_groups(cluster=cluster):
        state[g.name] = {
            "capacity": (g.capacity.min, g.capacity.desired, g.capacity.max),
            "enabled": g.enabled,
            "suspended": set(g.details["suspended"]),  # AWS: the suspended scaling processes
            "instances": len(g.instances),
            "serving": len(g.serving_instances()),
            "tags": g.tags,
        }
    return state


def serving_groups(provider: AwsProvider, cluster: str = "shop-web") -> list[str]:
    return sorted(name for name, s in cluster_state(provider, cluster).items() if s["serving"])


def launch_templates(provider: AwsProvider) -> list[str]:
    return sorted(t["LaunchTemplateName"] for t in provider.ec2.describe_launch_templates()["LaunchTemplates"])


@pytest.fixture
def bad_images(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Image ids whose instances the (in-process) moto server reports unhealthy in target groups.

    moto has no API to fail a health check, so we patch its target-health function.
    """
    from moto.elbv2 import models as elbv2_models

    bad: set[str] = set()
    original = elbv2_models.FakeTargetGroup.health_for

    def health_for(self: Any, target: dict[str, Any], ec2_backend: Any) -> Any:
        status = original(self, target, ec2_backend)
        instance = ec2_backend.get_instance_by_id(target["Id"]) if status.status == "healthy" else None
        if instance is not None and instance.image_id in bad:
            return elbv2_models.FakeHealthStatus(
                target["Id"],
                status.port,
                self.health_check_port,
                "unhealthy",
                "Target.FailedHealthChecks",
                "Health checks failed",
            )
        return status

    monkeypatch.setattr(elbv2_models.FakeTargetGroup, "health_for", health_for)
    yield bad


def deploy_raw(world: ShopWorld, image: str | None = None, **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "account": ACCOUNT,
        "region": REGION,
        "stack": "web",
        "image": image or world.release_image_id,
        "instance_type": "t3.small",
        "subnets": world.subnets,
        "security_groups": [world.security_groups["shop-web"]],
        "target_groups": [world.target_group_arn],
        "capacity": {"min": 2, "max": 4, "desired": 2},
        "strategy": "red_black",
        "poll_interval": 1,
        "health_timeout": 30,
    }
    raw.update(overrides)
    return raw


class Interrupted(Exception):
    """Stops run_stage at the moment the test wants to cancel."""


def interrupt_when(pred: Any, saved: dict[str, Any]) -> Any:
    def on_call(task: str, _n: int, context: dict[str, Any]) -> None:
        if pred(task, context):
            saved.update(context)
            raise Interrupted

    return on_call


def waiting_on(reason: str) -> Any:
    def pred(task: str, context: dict[str, Any]) -> bool:
        strategy = context.get("strategy")
        if task != "apply_strategy" or not strategy or not strategy.get("state"):
            return False
        return bool(strategy["actions"][strategy["step"]]["reason"] == reason)

    return pred

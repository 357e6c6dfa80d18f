"""bake and find_image against simulated AWS."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.provider import TAG_APPLICATION, TAG_BASE_IMAGE, TAG_EXECUTION, TAG_VERSION
from gennaker.sandbox.seed import ShopWorld
from gennaker.stages.bake import Bake
from gennaker.stages.deploy import Deploy
from gennaker.stages.find_image import FindImage
from tests.cloud.conftest import ACCOUNT, REGION, WorkerKilled, deploy_raw, run_stage, serving_groups

WHERE = {"account": ACCOUNT, "region": REGION, "poll_interval": 1}


def _builders(sessions: AwsSessions, state: str) -> list[str]:
    ec2 = sessions.client(ACCOUNT, REGION, "ec2")
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:gennaker:role", "Values": ["builder"]},
            {"Name": "instance-state-name", "Values": [state]},
        ]
    )
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def test_bake_then_deploy(
    world: ShopWorld, provider: AwsProvider, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    raw = {
        **WHERE,
        "version": "1.1.0",
        "base_image_name": "shop-base-ubuntu-*",
        "user_data": "#!/bin/sh\necho hi",
        "copy_to_regions": ["us-west-2"],
    }
    time.sleep(1.1)  # image creation dates have one-second resolution; make "newest" unambiguous
    run = run_stage(Bake(), raw, services, execution_id="exec-bake-1")
    assert run.status == "SUCCEEDED", run.message
    image_id = run.outputs["image_id"]
    assert run.outputs["image_name"] == "shop-1.1.0-exec-bake-1"
    image = sessions.client(ACCOUNT, REGION, "ec2").describe_images(ImageIds=[image_id])["Images"][0]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags[TAG_APPLICATION] == "shop" and tags[TAG_VERSION] == "1.1.0"
    assert tags[TAG_BASE_IMAGE] == world.base_image_id and tags[TAG_EXECUTION] == "exec-bake-1"
    assert _builders(sessions, "running") == [] and len(_builders(sessions, "terminated")) == 1
    west = run.outputs["image_ids"]["us-west-2"]
    west_image = sessions.client(ACCOUNT, "us-west-2", "ec2").describe_images(ImageIds=[west])["Images"][0]
    assert {t["Key"]: t["Value"] for t in west_image["Tags"]}[TAG_VERSION] == "1.1.0"

    # Re-running the whole stage for the same execution reuses the image and the copy.
    again = run_stage(Bake(), raw, services, execution_id="exec-bake-1")
    assert again.outputs["image_id"] == image_id and again.outputs["image_ids"]["us-west-2"] == west
    assert len(_builders(sessions, "terminated")) == 1

    found = run_stage(FindImage(), {**WHERE, "tags": {TAG_APPLICATION: "shop"}}, services)
    assert found.outputs["image_id"] == image_id  # newest of shop-1.0.0 and shop-1.1.0
    found = run_stage(FindImage(), {**WHERE, "image_name": "shop-1.0.*"}, services)
    assert found.outputs["image_id"] == world.release_image_id

    deploy = run_stage(Deploy(), deploy_raw(world, image=image_id), services)
    assert deploy.status == "SUCCEEDED" and deploy.outputs["image_id"] == image_id
    assert serving_groups(provider) == ["shop-web-v002"]


def test_bake_killed_after_each_call_makes_one_image(
    world: ShopWorld, sessions: AwsSessions, services: SimpleNamespace
) -> None:
    raw = {**WHERE, "version": "2.0.0", "base_image": world.base_image_id}
    before = sum(sessions.calls.values())
    assert run_stage(Bake(), raw, services, execution_id="count").status == "SUCCEEDED"
    calls = sum(sessions.calls.values()) - before
    for at in range(1, calls + 1):

        def after_call(_at: int = at, _counter: dict[str, int] = {"n": 0}, **_kwargs: Any) -> None:  # noqa: B006
            _counter["n"] += 1
            if _counter["n"] == _at:
                raise WorkerKilled()

        ec2 = sessions.client(ACCOUNT, REGION, "ec2").raw
        ec2.meta.events.register("after-call", after_call)
        run = run_stage(Bake(), raw, services, execution_id=f"kill-{at}")
        ec2.meta.events.unregister("after-call", after_call)
        assert run.status == "SUCCEEDED", run.message
        assert run.kills == 1, f"kill at call {at} did not happen"
        images = sessions.client(ACCOUNT, REGION, "ec2").describe_images(
            Owners=["self"], Filters=[{"Name": f"tag:{TAG_EXECUTION}", "Values": [f"kill-{at}"]}]
        )["Images"]
        assert [i["ImageId"] for i in images] == [run.outputs["image_id"]], f"kill at call {at}"
    assert _builders(sessions, "running") == []


def test_find_image_fails_when_nothing_matches(world: ShopWorld, services: SimpleNamespace) -> None:
    run = run_stage(FindImage(), {**WHERE, "image_name": "nope-*"}, services)
    assert run.status == "FAILED" and "nope-*" in (run.message or "")

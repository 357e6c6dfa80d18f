"""bake: produce an AMI for a version of the application, optionally copied to other regions.

Tasks: launch_builder → wait_for_builder → create_image → finish (terminate the builder, copy,
wait until every copy is available). Outputs ``image_id``, ``image_ids`` (per region), ``image_name``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from gennaker.cloud.aws.images import BakeRequest, Bakery
from gennaker.cloud.provider import TAG_BASE_IMAGE
from gennaker.cloud.registry import provider_for
from gennaker.cloud.tasks import CloudStageConfig
from gennaker.errors import InvalidInput
from gennaker.spec.durations import Duration
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult


class BakeConfig(CloudStageConfig):
    version: str
    base_image: str | None = None
    base_image_name: str | None = None
    base_image_owners: list[str] = Field(default_factory=lambda: ["self"])
    instance_type: str = "t3.small"
    user_data: str = ""
    subnet: str | None = None
    security_groups: list[str] = Field(default_factory=list)
    instance_profile: str | None = None
    image_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    copy_to_regions: list[str] = Field(default_factory=list)
    # "stopped": the user data shuts the builder down when provisioning is done (the usual way to
    # signal completion); "running": image the builder as soon as it runs.
    builder_ready: Literal["running", "stopped"] = "running"
    bake_timeout: Duration = 3600.0


class Bake(StageType):
    type = "bake"
    Config = BakeConfig
    description = "Build an AMI from a base image and provisioning user data"
    script_fields = ("user_data",)  # a #!/bin/sh script runs as root: values in it are quoted

    def tasks(self, config: Any) -> list[Task]:
        return [
            Task("launch_builder", self.launch_builder),
            Task("wait_for_builder", self.wait_for_builder),
            Task("create_image", self.create_image),
            Task("finish", self.finish),
        ]

    @staticmethod
    def _setup(ctx: TaskContext) -> tuple[BakeConfig, Bakery, BakeRequest]:
        cfg: BakeConfig = ctx.config
        provider = provider_for(ctx.services, cfg.account, cfg.region)  # checks the account and region
        for region in cfg.copy_to_regions:
            provider_for(ctx.services, cfg.account, region)
        # Baking is not in the neutral interface yet: an AMI bakery is what AWS providers offer.
        make_bakery = getattr(provider, "bakery", None)
        if make_bakery is None:
            raise InvalidInput(f"bake: account {cfg.account} cannot bake images of this kind (an AWS account can)")
        req = BakeRequest(
            application=ctx.application,
            version=cfg.version,
            execution_id=ctx.execution_id,
            stage_id=ctx.stage_id,
            base_image=cfg.base_image,
            base_image_name=cfg.base_image_name,
            base_image_owners=cfg.base_image_owners,
            instance_type=cfg.instance_type,
            user_data=cfg.user_data,
            subnet=cfg.subnet,
            security_groups=cfg.security_groups,
            instance_profile=cfg.instance_profile,
            image_name=cfg.image_name,
            tags=cfg.tags,
        )
        return cfg.model_copy(update={"region": provider.region}), make_bakery(), req

    def launch_builder(self, ctx: TaskContext) -> TaskResult:
        _cfg, bakery, req = self._setup(ctx)
        existing = bakery.find_image(req)
        if existing:
            ctx.log(f"reusing {existing['ImageId']} baked earlier by this execution")
            tags = {t["Key"]: t["Value"] for t in existing.get("Tags", [])}
            return TaskResult.succeeded(
                context={"image_id": existing["ImageId"], "base_image": tags.get(TAG_BASE_IMAGE, "")}
            )
        base = bakery.resolve_base(req)
        builder = bakery.launch_builder(req, base)
        ctx.log(f"builder {builder} launched from {base}")
        return TaskResult.succeeded(context={"base_image": base, "builder": builder, "started": ctx.now()})

    def wait_for_builder(self, ctx: TaskContext) -> TaskResult:
        cfg, bakery, _req = self._setup(ctx)
        if ctx.context.get("image_id"):
            return TaskResult.succeeded()
        state = bakery.instance_state(ctx.context["builder"])
        if state == cfg.builder_ready:
            return TaskResult.succeeded()
        if state in ("terminated", "shutting-down"):
            return TaskResult.failed(f"builder {ctx.context['builder']} is {state}: provisioning failed")
        if ctx.now() - float(ctx.context["started"]) > cfg.bake_timeout:
            return TaskResult.failed(f"builder did not reach {cfg.builder_ready} within {cfg.bake_timeout:g}s")
        return TaskResult.running(after=cfg.poll_interval, message=f"builder is {state}")

    def create_image(self, ctx: TaskContext) -> TaskResult:
        cfg, bakery, req = self._setup(ctx)
        image_id = ctx.context.get("image_id") or bakery.create_image(
            req, ctx.context["builder"], ctx.context["base_image"]
        )
        state = bakery.image_state(image_id)
        if state == "available":
            ctx.log(f"image {image_id} ({req.name}) is available")
            return TaskResult.succeeded(context={"image_id": image_id})
        if state in ("failed", "invalid", "deregistered", "missing"):
            return TaskResult.failed(f"image {image_id} is {state}")
        return TaskResult.running(
            after=cfg.poll_interval, context={"image_id": image_id}, message=f"image {image_id} is {state}"
        )

    def finish(self, ctx: TaskContext) -> TaskResult:
        cfg, bakery, req = self._setup(ctx)
        terminated = bakery.terminate_builder(req)
        if terminated:
            ctx.log(f"builder {terminated} terminated")
        image_id = ctx.context["image_id"]
        ids = {cfg.region: image_id}
        pending = []
        for region in cfg.copy_to_regions:
            if region == cfg.region:
                continue
            ids[region] = bakery.copy_to(req, image_id, region, ctx.context.get("base_image") or "")
            if bakery.image_state(ids[region], region) != "available":
                pending.append(region)
        outputs = {"image_id": image_id, "image_ids": ids, "image_name": req.name}
        if pending:
            return TaskResult.running(
                after=cfg.poll_interval, message=f"copying to {', '.join(pending)}", outputs=outputs
            )
        return TaskResult.succeeded(outputs=outputs)

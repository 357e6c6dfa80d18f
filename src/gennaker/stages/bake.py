"""bake: produce an AMI for a version of the application, optionally copied to other regions.

Tasks: launch_builder → wait_for_builder → create_image → finish (terminate the builder, copy,
wait until every copy is available). Outputs ``image_id``, ``image_ids`` (per region), ``image_name``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import ConfigDict, Field

from gennaker.cloud import registry
from gennaker.cloud.aws.images import BakeRequest, Bakery
from gennaker.cloud.aws.options import AwsBakeOptions
from gennaker.cloud.local.options import LocalBakeOptions
from gennaker.cloud.provider import TAG_BASE_IMAGE, TAG_EXECUTION, TAG_STAGE, CloudProvider, Image
from gennaker.cloud.tasks import CloudStageConfig
from gennaker.errors import InvalidInput
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult


class BakeConfig(CloudStageConfig):
    # Extras are the provider's fields (AwsBakeOptions, LocalBakeOptions), checked by its model.
    model_config = ConfigDict(extra="allow")
    provider_stage: ClassVar[str | None] = "bake"

    version: str
    image_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


@runtime_checkable
class AmiBaker(Protocol):
    """A provider that bakes machine images with a builder instance (AWS)."""

    def bakery(self) -> Bakery: ...


@runtime_checkable
class Packager(Protocol):
    """A provider whose images are packaged directories (local)."""

    def bake(self, source_dir: Path, name: str, version: str, tags: dict[str, str] | None = None) -> Image: ...


class Bake(StageType):
    type = "bake"
    Config = BakeConfig
    description = "Build an image: an AMI from a base image and user data, or a packaged directory (local)"
    script_fields = ("user_data",)  # a #!/bin/sh script runs as root: values in it are quoted

    def tasks(self, config: Any) -> list[Task]:
        return [
            Task("launch_builder", self.launch_builder),
            Task("wait_for_builder", self.wait_for_builder),
            Task("create_image", self.create_image),
            Task("finish", self.finish),
        ]

    @staticmethod
    def _options(ctx: TaskContext) -> tuple[CloudProvider, Any]:
        cfg: BakeConfig = ctx.config
        provider = registry.provider_for(ctx.services, cfg.account, cfg.region)  # checks account and region
        return provider, cfg.provider_options(registry.kind_of(ctx.services.config, cfg.account).name)

    @staticmethod
    def _setup(ctx: TaskContext) -> tuple[AwsBakeOptions, Bakery, BakeRequest, str]:
        cfg: BakeConfig = ctx.config
        provider, opts = Bake._options(ctx)
        if not isinstance(opts, AwsBakeOptions) or not isinstance(provider, AmiBaker):
            raise InvalidInput(f"bake: account {cfg.account} does not bake machine images")
        for region in opts.copy_to_regions:
            registry.provider_for(ctx.services, cfg.account, region)
        req = BakeRequest(
            application=ctx.application,
            version=cfg.version,
            execution_id=ctx.execution_id,
            stage_id=ctx.stage_id,
            base_image=opts.base_image,
            base_image_name=opts.base_image_name,
            base_image_owners=opts.base_image_owners,
            instance_type=opts.instance_type,
            user_data=opts.user_data,
            subnet=opts.subnet,
            security_groups=opts.security_groups,
            instance_profile=opts.instance_profile,
            image_name=cfg.image_name,
            tags=cfg.tags,
        )
        return opts, provider.bakery(), req, provider.region

    def _package(self, ctx: TaskContext, provider: Packager, opts: LocalBakeOptions, region: str) -> TaskResult:
        """A local bake: package the source directory (relative to the pipeline file) immutably.
        The same content packaged again is the same artifact, so a re-run finds it."""
        cfg: BakeConfig = ctx.config
        source = Path(ctx.trigger.get("base_dir") or os.getcwd()) / opts.source
        name = cfg.image_name or ctx.application
        tags = {**cfg.tags, TAG_EXECUTION: ctx.execution_id, TAG_STAGE: ctx.stage_id}
        image = provider.bake(source, name, cfg.version, tags)
        ctx.log(f"packaged {source} as {image.id} ({name} {cfg.version})")
        outputs = {"image_id": image.id, "image_ids": {region: image.id}, "image_name": name}
        return TaskResult.succeeded(outputs=outputs, context={"packaged": outputs})

    def launch_builder(self, ctx: TaskContext) -> TaskResult:
        provider, opts = self._options(ctx)
        if isinstance(opts, LocalBakeOptions) and isinstance(provider, Packager):
            return self._package(ctx, provider, opts, provider.region)
        _opts, bakery, req, _region = self._setup(ctx)
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
        if ctx.context.get("packaged"):
            return TaskResult.succeeded()
        cfg, bakery, _req, _region = self._setup(ctx)
        if ctx.context.get("image_id"):
            return TaskResult.succeeded()
        state = bakery.instance_state(ctx.context["builder"])
        if state == cfg.builder_ready:
            return TaskResult.succeeded()
        if state in ("terminated", "shutting-down"):
            return TaskResult.failed(f"builder {ctx.context['builder']} is {state}: provisioning failed")
        if ctx.now() - float(ctx.context["started"]) > cfg.bake_timeout:
            return TaskResult.failed(f"builder did not reach {cfg.builder_ready} within {cfg.bake_timeout:g}s")
        return TaskResult.running(after=ctx.config.poll_interval, message=f"builder is {state}")

    def create_image(self, ctx: TaskContext) -> TaskResult:
        if ctx.context.get("packaged"):
            return TaskResult.succeeded()
        _opts, bakery, req, _region = self._setup(ctx)
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
            after=ctx.config.poll_interval, context={"image_id": image_id}, message=f"image {image_id} is {state}"
        )

    def finish(self, ctx: TaskContext) -> TaskResult:
        if ctx.context.get("packaged"):
            return TaskResult.succeeded(outputs=ctx.context["packaged"])
        cfg, bakery, req, home = self._setup(ctx)
        terminated = bakery.terminate_builder(req)
        if terminated:
            ctx.log(f"builder {terminated} terminated")
        image_id = ctx.context["image_id"]
        ids = {home: image_id}
        pending = []
        for region in cfg.copy_to_regions:
            if region == home:
                continue
            ids[region] = bakery.copy_to(req, image_id, region, ctx.context.get("base_image") or "")
            if bakery.image_state(ids[region], region) != "available":
                pending.append(region)
        outputs = {"image_id": image_id, "image_ids": ids, "image_name": req.name}
        if pending:
            return TaskResult.running(
                after=ctx.config.poll_interval, message=f"copying to {', '.join(pending)}", outputs=outputs
            )
        return TaskResult.succeeded(outputs=outputs)

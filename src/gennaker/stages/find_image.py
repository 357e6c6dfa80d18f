"""find_image: the newest image matching tags and/or a name pattern; outputs ``image_id``."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, model_validator

from gennaker.cloud import registry
from gennaker.cloud.tasks import CloudStageConfig
from gennaker.stages.base import StageType, Task, TaskContext, TaskResult


class FindImageConfig(CloudStageConfig):
    # Extras are the provider's fields (AWS: owners), checked by its model.
    model_config = ConfigDict(extra="allow")
    provider_stage: ClassVar[str | None] = "find_image"

    image_name: str | None = None  # a glob, e.g. shop-1.4.* (``name`` is the stage's display name)
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _something(self) -> FindImageConfig:
        if not self.image_name and not self.tags:
            raise ValueError("find_image needs image_name (a pattern) and/or tags")
        return self


class FindImage(StageType):
    type = "find_image"
    Config = FindImageConfig
    description = "Pick the newest image by tags or name pattern"

    def tasks(self, config: Any) -> list[Task]:
        return [Task("find_image", self.find)]

    def find(self, ctx: TaskContext) -> TaskResult:
        cfg: FindImageConfig = ctx.config
        provider = registry.provider_for(ctx.services, cfg.account, cfg.region)
        options = cfg.provider_options(registry.kind_of(ctx.services.config, cfg.account).name)
        images = provider.find_images(cfg.image_name, cfg.tags, options)
        if not images:
            return TaskResult.failed(
                f"no image in {provider.account}/{provider.region} matches "
                f"name {cfg.image_name or '*'} and tags {cfg.tags}"
            )
        best = images[0]
        ctx.log(f"found {best.id} ({best.name}, created {best.created}) among {len(images)} matches")
        return TaskResult.succeeded(outputs={"image_id": best.id, "image_name": best.name, "tags": best.tags})

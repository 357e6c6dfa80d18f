"""The cloud stage types, for the registry (``gennaker.stages.default_registry``) to include."""

from __future__ import annotations

from gennaker.stages.bake import Bake
from gennaker.stages.base import StageType
from gennaker.stages.cleanup import CleanupServerGroups
from gennaker.stages.deploy import Deploy
from gennaker.stages.find_image import FindImage
from gennaker.stages.server_group import (
    DestroyServerGroup,
    DisableServerGroup,
    EnableServerGroup,
    ResizeServerGroup,
    RollbackCluster,
)


def cloud_stage_types() -> list[StageType]:
    return [
        Bake(),
        FindImage(),
        Deploy(),
        EnableServerGroup(),
        DisableServerGroup(),
        ResizeServerGroup(),
        DestroyServerGroup(),
        RollbackCluster(),
        CleanupServerGroups(),
    ]

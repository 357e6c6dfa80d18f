"""Stage types: one module each. ``default_registry`` is the one place that lists them."""

from __future__ import annotations

from typing import Any

from gennaker.spec.models import StageConfig
from gennaker.stages.base import StageType


def default_registry() -> dict[str, StageType[Any]]:
    from gennaker.stages.bake import Bake
    from gennaker.stages.canary import Canary
    from gennaker.stages.cleanup import CleanupServerGroups
    from gennaker.stages.deploy import Deploy
    from gennaker.stages.dr_drill import DrDrill
    from gennaker.stages.find_image import FindImage
    from gennaker.stages.manual_judgment import ManualJudgmentStage
    from gennaker.stages.readiness_gate import ReadinessGate
    from gennaker.stages.run import RunStage
    from gennaker.stages.server_group import (
        DestroyServerGroup,
        DisableServerGroup,
        EnableServerGroup,
        ResizeServerGroup,
        RollbackCluster,
    )
    from gennaker.stages.wait import WaitStage

    types: list[StageType[Any]] = [
        RunStage(), WaitStage(), ManualJudgmentStage(),
        Bake(), FindImage(), Deploy(), EnableServerGroup(), DisableServerGroup(), ResizeServerGroup(),
        DestroyServerGroup(), RollbackCluster(), CleanupServerGroups(), ReadinessGate(), Canary(),
        DrDrill(),
    ]  # fmt: skip
    return {t.type: t for t in types}


def stage_schemas(registry: dict[str, StageType[Any]]) -> dict[str, type[StageConfig]]:
    return {name: t.Config for name, t in registry.items()}


def skippable_types(registry: dict[str, StageType[Any]]) -> set[str]:
    return {name for name, t in registry.items() if t.capabilities.skippable}

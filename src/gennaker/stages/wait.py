"""``wait``: wait a duration. The deadline is the stage's stored start time plus the duration, so
it survives restarts; an operator may skip the rest of the wait."""

from __future__ import annotations

from gennaker.spec.durations import Duration
from gennaker.spec.models import StageConfig
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult

_MAX_POLL = 3600.0  # even a long wait is looked at hourly (cheap: one message, no thread)


class WaitConfig(StageConfig):
    duration: Duration


class WaitStage(StageType[WaitConfig]):
    type = "wait"
    Config = WaitConfig
    description = "Wait for a duration (survives restarts; can be skipped)."
    capabilities = Capabilities(waits=True, skippable=True)

    def tasks(self, config: WaitConfig) -> list[Task[WaitConfig]]:
        return [Task("wait", self.wait)]

    def wait(self, ctx: TaskContext[WaitConfig]) -> TaskResult:
        skip = ctx.context.get("skip")
        if skip:
            return TaskResult.succeeded(outputs={"skipped": True}, message=f"wait skipped by {skip.get('by')}")
        remaining = ctx.stage_started_at + ctx.config.duration - ctx.now()
        if remaining <= 0:
            return TaskResult.succeeded(outputs={"skipped": False})
        return TaskResult.running(after=min(remaining, _MAX_POLL))

"""``manual_judgment``: wait for a person's Go/No-Go.

The first option continues the pipeline; any other stops it as TERMINAL unless it is listed in
``continue_options``. Only people with one of ``roles`` may judge (admins always may). The choice is
the stage output ``judgment``; who judged, when and why are kept with it.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from gennaker.spec.models import StageConfig
from gennaker.stages.base import Capabilities, StageType, Task, TaskContext, TaskResult


class JudgmentConfig(StageConfig):
    instructions: str = ""
    options: list[str] = Field(default_factory=lambda: ["approve", "reject"], min_length=1)
    continue_options: list[str] = Field(default_factory=list)
    roles: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_options(self) -> JudgmentConfig:
        unknown = [o for o in self.continue_options if o not in self.options]
        if unknown:
            raise ValueError(f"continue_options {unknown} are not among options {self.options}")
        if len(set(self.options)) != len(self.options):
            raise ValueError("options must be distinct")
        return self


class ManualJudgmentStage(StageType[JudgmentConfig]):
    type = "manual_judgment"
    Config = JudgmentConfig
    description = "Wait for a Go/No-Go judgment by a person with one of the given roles."
    capabilities = Capabilities(waits=True, judgeable=True)

    def tasks(self, config: JudgmentConfig) -> list[Task[JudgmentConfig]]:
        return [Task("awaitJudgment", self.await_judgment)]

    def await_judgment(self, ctx: TaskContext[JudgmentConfig]) -> TaskResult:
        judgment = ctx.context.get("judgment")
        if not judgment:
            return TaskResult.running(after=3600)
        cfg = ctx.config
        choice = judgment["choice"]
        outputs = {
            "judgment": choice,
            "judged_by": judgment.get("by"),
            "judged_at": judgment.get("at"),
            "comment": judgment.get("comment"),
        }
        if choice == cfg.options[0] or choice in cfg.continue_options:
            return TaskResult.succeeded(outputs=outputs, message=f"judged '{choice}' by {judgment.get('by')}")
        return TaskResult.terminal(f"judged '{choice}' by {judgment.get('by')}", outputs=outputs)

"""Run a drill outside the engine (``gennaker dr drill``, ``POST /api/dr/drills`` without a worker)
through the very tasks of the ``dr_drill`` stage, one after the other, sleeping between polls as
the engine would: the same code path, the same row in ``dr_drills``, the same tear-down."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gennaker.engine.model import new_id
from gennaker.errors import InvalidInput
from gennaker.ops.dr import store
from gennaker.stages.base import TaskContext, TaskResult
from gennaker.stages.dr_drill import DrDrill, DrDrillConfig

MAX_CALLS = 100_000


def drill_config(
    *,
    account: str,
    application: str,
    from_region: str,
    to_region: str,
    scenario: str = "region_loss",
    rto: str | float | None = None,
    rpo: str | float | None = None,
    keep: bool = False,
    **extra: Any,
) -> DrDrillConfig:
    """The stage's config from command-line or API values (ValidationError on a bad one)."""
    return DrDrillConfig.model_validate(
        {
            "id": "drill",
            "type": "dr_drill",
            "account": account,
            "application": application,
            "from_region": from_region,
            "to_region": to_region,
            "scenario": scenario,
            "objectives": {k: v for k, v in {"rto": rto, "rpo": rpo}.items() if v is not None},
            "keep": keep,
            **extra,
        }
    )


def check_account(config: Any, cfg: DrDrillConfig) -> None:
    """Refuse, before anything is recorded, a drill the account cannot run: an unknown or non-AWS
    account, or a region it does not have (the same rule the drill applies when it starts)."""
    acct = config.accounts.get(cfg.account)
    if acct is None:
        raise InvalidInput(f"unknown account '{cfg.account}' (known: {', '.join(sorted(config.accounts)) or 'none'})")
    if acct.kind != "aws":
        raise InvalidInput(f"account {cfg.account} is kind {acct.kind}: DR drills run on AWS accounts")
    allowed = [*acct.regions, *([acct.dr_region] if acct.dr_region else [])]
    for field, region in (("from_region", cfg.from_region), ("to_region", cfg.to_region)):
        if region not in allowed:
            raise InvalidInput(
                f"{field}: region {region} is not configured for account {cfg.account} ({', '.join(allowed)})"
            )


def run_in_process(
    services: Any,
    config: DrDrillConfig,
    *,
    log: Callable[[str], None] = lambda _line: None,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    execution_id: str | None = None,
) -> dict[str, Any]:
    """Run the drill to its end and return its ``dr_drills`` row. ``services``: config, aws, db."""
    stage = DrDrill()
    execution_id = execution_id or f"cli-{new_id()}"
    context: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    started = now()
    calls = 0
    for task in stage.tasks(config):
        while True:
            calls += 1
            if calls > MAX_CALLS:
                raise RuntimeError("the drill did not end")
            ctx: TaskContext[DrDrillConfig] = TaskContext(
                execution_id=execution_id,
                stage_id=config.id,
                pipeline="dr-drill",
                application=config.application or "",
                trigger={},
                config=config,
                context=dict(context),
                outputs=dict(outputs),
                attempt=1,
                stage_started_at=started,
                services=services,
                log=log,
                now=now,
            )
            try:
                result: TaskResult = task.run(ctx)
            except BaseException:
                if context.get("drill"):  # interrupted (Ctrl-C) or a bug: tear down what was made
                    stage.on_cancel(ctx)
                raise
            context.update(result.context)
            outputs.update(result.outputs)
            if result.status == "RUNNING":
                sleep(max(0.0, result.poll_after))
                continue
            break
        if result.status != "SUCCEEDED":
            break
    drill_id = (context.get("drill") or {}).get("id") or outputs.get("drill_id")
    if not drill_id:
        raise RuntimeError(result.message or "the drill did not start")
    with services.db.read() as conn:
        return store.get_drill(conn, drill_id)

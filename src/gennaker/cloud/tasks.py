"""Glue between stage tasks and the cloud layer: config pieces shared by the cloud stage types, the
provider lookup, and a runner that advances a persisted list of actions one poll at a time.

The functions here take plain arguments (a provider, a context dict) so that the API can run the
same actions outside the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gennaker.cloud.actions import Action, run_action
from gennaker.cloud.aws.provider import AwsProvider
from gennaker.cloud.provider import Capacity, CloudProvider
from gennaker.errors import CloudError, ConfigError, GennakerError
from gennaker.spec.durations import Duration
from gennaker.spec.models import StageConfig


class CapacityModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: int = Field(ge=0)
    max: int = Field(ge=0)
    desired: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> CapacityModel:
        if not self.min <= self.desired <= self.max:
            raise ValueError(f"capacity needs min <= desired <= max (got {self.min}/{self.desired}/{self.max})")
        return self

    def to_capacity(self) -> Capacity:
        return Capacity(self.min, self.max, self.desired)


class CloudStageConfig(StageConfig):
    """Where a cloud stage acts, and how often it polls AWS while waiting."""

    account: str
    region: str
    poll_interval: Duration = 10.0


def provider_for(services: Any, account: str, region: str) -> CloudProvider:
    """The provider for an account and region named in the config (region checked against it)."""
    acct = services.config.account(account)
    if region not in acct.regions:
        raise ConfigError(
            f"region {region} is not configured for account {account} (configured: {', '.join(acct.regions)})"
        )
    return AwsProvider(services.aws, account, region)


# AWS error codes worth another try: throttling and server-side trouble.
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestThrottled",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
    }
)
MAX_STEP_RETRIES = 3


class ActionFailed(GennakerError):
    """An action of a list failed; carries the action so the caller can finish or undo it."""

    def __init__(self, action: Action, cause: Exception):
        self.action = action
        self.cause = cause
        super().__init__(str(cause))


@dataclass
class Progress:
    done: bool
    context: dict[str, Any]
    poll_after: float = 0.0
    message: str | None = None
    performed: list[str] = field(default_factory=list)


def advance(
    provider: CloudProvider,
    saved: dict[str, Any] | None,
    make: Callable[[], list[Action]],
    now: Callable[[], float],
    poll_interval: float,
    log: Callable[[str], None],
) -> Progress:
    """Run the saved action list (or ``make()`` it on first call) from where it stopped.

    Returns when every action is done or one needs to be polled later; ``context`` is the state to
    persist. Errors propagate: the caller decides between failing and rolling back.
    """
    if saved is None:
        # Persist the list before acting on it: a list re-made after a crash would be computed
        # from a half-changed cluster and could miss the step that was cut short.
        planned = [a.to_dict() for a in make()]
        return Progress(False, {"actions": planned, "step": 0, "state": {}}, 0.0, f"{len(planned)} steps planned")
    state = saved
    actions = [Action.from_dict(d) for d in state["actions"]]
    step, step_state = int(state["step"]), dict(state.get("state") or {})
    errors = int(state.get("errors", 0))
    performed: list[str] = []
    while step < len(actions):
        try:
            outcome = run_action(provider, actions[step], step_state, now(), poll_interval)
        except CloudError as exc:
            # botocore already retried this call; a transient error left over is retried once
            # more per step after a poll interval (the step is idempotent) before it counts.
            if exc.code in TRANSIENT_CODES and errors < MAX_STEP_RETRIES:
                log(f"{actions[step].describe()}: {exc}; retrying")
                retry = {"actions": state["actions"], "step": step, "state": step_state, "errors": errors + 1}
                return Progress(False, retry, poll_interval, f"retrying after {exc.code}", performed)
            raise ActionFailed(actions[step], exc) from exc
        except (GennakerError, ValueError) as exc:
            raise ActionFailed(actions[step], exc) from exc
        if not outcome.done:
            saved_state = {"actions": state["actions"], "step": step, "state": outcome.state, "errors": errors}
            return Progress(False, saved_state, outcome.poll_after, outcome.message, performed)
        log(outcome.message or actions[step].describe())
        performed.append(actions[step].describe())
        step, step_state, errors = step + 1, {}, 0
    return Progress(True, {"actions": state["actions"], "step": step, "state": {}}, 0.0, None, performed)

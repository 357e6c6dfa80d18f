"""Glue between stage tasks and the cloud layer: config pieces shared by the cloud stage types
(where a stage acts, and its provider-specific fields checked by the account kind's own model), and
a runner that advances a persisted list of actions one poll at a time.

The functions here take plain arguments (a provider, a context dict) so that the API can run the
same actions outside the engine. Providers come from ``gennaker.cloud.registry``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from gennaker.cloud import registry
from gennaker.cloud.actions import Action, run_action
from gennaker.cloud.provider import Capacity, CloudProvider
from gennaker.errors import CloudError, GennakerError, InvalidInput
from gennaker.spec.config import Config
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


def _details(errors: list[Any]) -> list[InitErrorDetails]:
    return [
        InitErrorDetails(type=e["type"], loc=tuple(e["loc"]), input=e.get("input"), ctx=e.get("ctx") or {})
        for e in errors
    ]


class CloudStageConfig(StageConfig):
    """Where a cloud stage acts, and how often it polls the cloud while waiting.

    A stage type whose config sets ``provider_stage`` also takes fields only some providers
    understand: they are kept as extras and checked by the model of the account's kind
    (``registry.options_model``). The kind is known when the schema is bound to a configuration
    (``bind_schemas``: ``gennaker validate``, the runtime); unbound, a field no provider knows is
    still refused, and the kind's model checks the rest when the stage runs (``provider_options``).
    """

    account: str
    region: str | None = None  # default: the account's only region
    poll_interval: Duration = 10.0

    provider_stage: ClassVar[str | None] = None  # the stage type whose provider fields this takes
    # Once bound to a configuration (bind_schemas): account -> its kind, and its regions.
    account_kinds: ClassVar[Mapping[str, str] | None] = None
    account_regions: ClassVar[Mapping[str, list[str]] | None] = None

    @model_validator(mode="wrap")
    @classmethod
    def _by_account(cls, data: Any, handler: Any) -> Any:
        if not isinstance(data, dict) or (cls.account_kinds is None and cls.provider_stage is None):
            return handler(data)
        account = data.get("account")
        problems: list[Any] = []
        regions = (cls.account_regions or {}).get(account) if isinstance(account, str) else None
        if regions is not None and data.get("region") is None:
            if len(regions) == 1:
                data = {**data, "region": regions[0]}
            else:  # which one cannot be guessed
                problems.append({"type": "missing", "loc": ("region",), "input": data})
        if cls.provider_stage is not None:
            problems += cls._provider_problems(data, account)
        try:
            result = handler(data)
        except ValidationError as exc:
            problems = exc.errors() + problems
        if problems:
            raise ValidationError.from_exception_data(cls.__name__, _details(problems))
        return result

    @classmethod
    def _provider_problems(cls, data: dict[str, Any], account: Any) -> list[Any]:
        """The provider fields' errors: by the kind's model once bound, else only unknown names."""
        assert cls.provider_stage is not None
        extra = {k: v for k, v in data.items() if k not in cls.model_fields}
        kind = (cls.account_kinds or {}).get(account) if isinstance(account, str) else None
        model = registry.options_model(kind, cls.provider_stage) if kind else None
        if model is None:
            # Unbound: any provider's field may be meant. Bound to a kind without such fields: none is.
            known = registry.option_fields(cls.provider_stage) if kind is None else set()
            return [{"type": "extra_forbidden", "loc": (k,), "input": v} for k, v in extra.items() if k not in known]
        try:
            model.model_validate(extra)
        except ValidationError as exc:
            return exc.errors()
        return []

    def provider_options(self, kind: str) -> Any:
        """This stage's provider-specific fields, validated by the model of ``kind`` (None if the
        stage type has none); a wrong field is one line naming it."""
        model = registry.options_model(kind, self.provider_stage) if self.provider_stage else None
        if model is None:
            return None
        try:
            return model.model_validate(self.model_extra or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            raise InvalidInput(f"stage {self.id}: {where}: {first['msg']} (for an account of kind {kind})") from None


def bind_schemas(schemas: Mapping[str, type[StageConfig]], config: Config) -> dict[str, type[StageConfig]]:
    """The stage schemas with each cloud stage's config bound to ``config``'s account kinds, so that
    a provider-specific field is checked, with its position, when the document is loaded."""
    accounts = {
        "account_kinds": {name: acct.kind for name, acct in config.accounts.items()},
        "account_regions": {name: list(acct.regions) for name, acct in config.accounts.items()},
    }
    bound: dict[str, type[StageConfig]] = {}
    for name, schema in schemas.items():
        if issubclass(schema, CloudStageConfig):
            schema = type(schema.__name__, (schema,), {**accounts, "__module__": schema.__module__})
        bound[name] = schema
    return bound


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

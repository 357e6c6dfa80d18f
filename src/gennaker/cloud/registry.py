"""The providers Gennaker knows, by account ``kind``: the one place that builds a provider.

Declared as data (an explicit mapping, no registration by decorator or import side effect): each
kind names the factory of its provider and the models of the stage fields only it understands
(``deploy``: instance_type, subnets, ... for AWS; command, env, load_balancers for local). Stages,
the planner, the API and the console reach a cloud only through ``provider_for`` and
``all_providers`` and the interface in ``cloud/provider.py``; nothing outside ``cloud/<kind>/``
builds a provider class or calls a cloud SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gennaker.cloud.aws.options import AwsBakeOptions, AwsDeployOptions, AwsFindImageOptions
from gennaker.cloud.local.options import LocalBakeOptions, LocalDeployOptions
from gennaker.cloud.provider import CloudProvider
from gennaker.errors import ConfigError
from gennaker.spec.config import Account, Config

log = logging.getLogger("gennaker.cloud")

# (services, account name, account, region) -> provider. ``services`` is what the host wired in:
# anything with ``config`` and, for AWS, ``aws`` (the shared AwsSessions).
ProviderFactory = Callable[[Any, str, Account, str], CloudProvider]


@dataclass(frozen=True)
class ProviderKind:
    name: str
    build: ProviderFactory
    # stage type -> the model of the fields of that stage only this provider understands
    stage_options: dict[str, type[BaseModel]] = field(default_factory=dict)
    # What the cloud does by itself that this provider must do for it, every few seconds, on each
    # worker (an ASG replaces crashed instances; the local provider's processes need a hand).
    upkeep: Callable[[Any], None] | None = None
    # What a deploy's ``watch:`` can read in accounts of this kind: the cloud's own alarms
    # (``CloudProvider.alarm_states``), and the metric sources that see its server groups.
    alarms: bool = False
    metric_sources: tuple[str, ...] = ()


@dataclass
class CloudServices:
    """What providers are built from, for a host without a runtime (``gennaker plan``): the
    configuration, and AWS clients made on first use."""

    config: Config
    _aws: Any = None

    @property
    def aws(self) -> Any:
        if self._aws is None:
            from gennaker.cloud.aws.session import AwsSessions

            self._aws = AwsSessions(self.config)
        return self._aws


def _aws(services: Any, name: str, account: Account, region: str) -> CloudProvider:
    # Imported here: boto3 costs a second to import, and most commands never talk to AWS.
    from gennaker.cloud.aws.provider import AwsProvider

    return AwsProvider(services.aws, name, region)


def _local(services: Any, name: str, account: Account, region: str) -> CloudProvider:
    from gennaker.cloud.local.haproxy import HealthCheck, LoadBalancerSpec
    from gennaker.cloud.local.provider import LocalProvider

    try:
        lbs = [
            LoadBalancerSpec(lb_name, lb.listen, HealthCheck(lb.health.path, lb.health.interval, lb.health.timeout))
            for lb_name, lb in sorted(account.load_balancers.items())
        ]
    except ValueError as exc:  # a listen address or name HAProxy cannot take
        raise ConfigError(f"account {name}: {exc}") from None
    return LocalProvider(state_dir(services.config, name, account), name, lbs, region=region)


def state_dir(config: Config, name: str, account: Account) -> Path:
    """Where a local account keeps its processes' records, artifacts and HAProxy: as configured
    (relative to the configuration file), else ``.gennaker/local/<account>`` beside that file."""
    base = Path(config.source).parent if config.source else Path.cwd()
    return base / (account.state_dir or f".gennaker/local/{name}")


PROVIDERS: dict[str, ProviderKind] = {
    "aws": ProviderKind(
        "aws",
        _aws,
        {"deploy": AwsDeployOptions, "bake": AwsBakeOptions, "find_image": AwsFindImageOptions},
        alarms=True,
        metric_sources=("cloudwatch", "prometheus"),
    ),
    "local": ProviderKind(
        "local",
        _local,
        {"deploy": LocalDeployOptions, "bake": LocalBakeOptions},
        upkeep=lambda provider: provider.reconcile_all(),
        metric_sources=("haproxy", "prometheus"),
    ),
}


def kind_of(config: Config, account: str) -> ProviderKind:
    acct = config.account(account)
    try:
        return PROVIDERS[acct.kind]
    except KeyError:
        raise ConfigError(f"account {account} is of kind {acct.kind}, which no provider serves") from None


def region_for(config: Config, account: str, region: str | None) -> str:
    """The region named (checked against the account), or the account's only region."""
    acct = config.account(account)
    if region is None:
        if len(acct.regions) == 1:
            return acct.regions[0]
        raise ConfigError(f"account {account} has several regions ({', '.join(acct.regions)}): name one with region:")
    if region not in acct.regions:
        raise ConfigError(
            f"region {region} is not configured for account {account} (configured: {', '.join(acct.regions)})"
        )
    return region


def provider_for(services: Any, account: str, region: str | None = None) -> CloudProvider:
    """The provider for an account and region named in the config (region checked against it)."""
    where = region_for(services.config, account, region)
    return kind_of(services.config, account).build(services, account, services.config.account(account), where)


def all_providers(services: Any) -> list[CloudProvider]:
    """Every configured account and region (the cloud views span them all)."""
    accounts = sorted(services.config.accounts.items())
    return [provider_for(services, name, region) for name, acct in accounts for region in acct.regions]


def upkeep(services: Any) -> None:
    """One round of every provider's upkeep, for the accounts of this machine that have state here
    (a worker never creates a local account's directory by looking at it). A failing account is
    logged with its reason and does not stop the others."""
    for name, acct in sorted(services.config.accounts.items()):
        kind = PROVIDERS.get(acct.kind)
        if kind is None or kind.upkeep is None:
            continue
        if acct.kind == "local" and not state_dir(services.config, name, acct).exists():
            continue
        try:
            kind.upkeep(provider_for(services, name))
        except Exception as exc:  # the next round tries again; the reason is in the log meanwhile
            log.warning("upkeep of account %s failed: %s", name, exc)


def options_model(kind: str, stage_type: str) -> type[BaseModel] | None:
    """The model of a stage type's provider-specific fields for accounts of ``kind``."""
    return PROVIDERS[kind].stage_options.get(stage_type) if kind in PROVIDERS else None


def option_fields(stage_type: str) -> set[str]:
    """Every provider-specific field any provider accepts on ``stage_type``."""
    models = [p.stage_options[stage_type] for p in PROVIDERS.values() if stage_type in p.stage_options]
    return {name for m in models for name in m.model_fields}

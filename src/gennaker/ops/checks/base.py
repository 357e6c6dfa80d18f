"""What a check is: metadata plus a pure function from an inventory view to results."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from gennaker.ops.findings import Severity, Status
from gennaker.ops.model import GLOBAL, AccountInfo, Failure, Resource
from gennaker.ops.settings import OpsSettings


@dataclass(frozen=True)
class Subject:
    """Something a finding is about that is not one collected resource (a workload, an account)."""

    type: str
    account: str
    region: str
    ref: str


Target = Resource | Subject


@dataclass(frozen=True)
class Result:
    status: Status
    subject: Target
    message: str
    severity: Severity | None = None  # overrides the check's severity (e.g. a warning-level FAIL)


def ok(subject: Target, message: str) -> Result:
    return Result("PASS", subject, message)


def fail(subject: Target, message: str, severity: Severity | None = None) -> Result:
    return Result("FAIL", subject, message, severity)


def unknown(subject: Target, message: str) -> Result:
    return Result("UNKNOWN", subject, message)


def na(subject: Target, message: str) -> Result:
    return Result("NOT_APPLICABLE", subject, message)


class Inventory:
    """A snapshot as one check sees it: scopes whose needed collections failed are left out."""

    def __init__(
        self,
        by_type: dict[str, list[Resource]],
        accounts: dict[str, AccountInfo],
        excluded: set[tuple[str, str]],
        now: dt.datetime,
        failures: list[Failure] | None = None,
    ):
        self._by_type = by_type
        self._failures = failures or []
        self._excluded = excluded
        self._all_accounts = accounts
        self.now = now
        self._cache: dict[str, list[Resource]] = {}

    def failure(self, rtype: str, account: str, region: str) -> str | None:
        """Why ``rtype`` is missing in (account, region), for checks that use a type optionally."""
        return next(
            (
                f.reason()
                for f in self._failures
                if f.type == rtype and f.account == account and f.region in {region, GLOBAL}
            ),
            None,
        )

    def available(self, account: str, region: str) -> bool:
        return (account, region) not in self._excluded and (account, GLOBAL) not in self._excluded

    def of(self, rtype: str) -> list[Resource]:
        if rtype not in self._cache:
            self._cache[rtype] = [r for r in self._by_type.get(rtype, []) if self.available(r.account, r.region)]
        return self._cache[rtype]

    @property
    def accounts(self) -> list[AccountInfo]:
        """Accounts with at least their global data available."""
        return [a for n, a in sorted(self._all_accounts.items()) if (n, GLOBAL) not in self._excluded]

    def account(self, name: str) -> AccountInfo:
        return self._all_accounts[name]

    def regions(self, account: str) -> list[str]:
        info = self._all_accounts[account]
        return [r for r in info.regions if self.available(account, r)]

    def account_subject(self, info: AccountInfo, region: str = GLOBAL) -> Subject:
        return Subject("account", info.name, region, info.account_id or info.name)


CheckFn = Callable[[Inventory, OpsSettings], Iterator[Result]]


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    severity: Severity
    needs: tuple[str, ...]
    rationale: str
    remediation: str
    cli: str
    source: str  # the source-document item this check answers
    fn: CheckFn
    optional: tuple[str, ...] = ()  # collected too, but a failure there does not exclude scopes

    @property
    def pillar(self) -> str:
        return self.id.split(".", 1)[0]

    def metadata(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "pillar": self.pillar,
            "severity": self.severity,
            "needs": list(self.needs),
            "rationale": self.rationale,
            "remediation": {"text": self.remediation, "cli": self.cli},
            "source": self.source,
        }

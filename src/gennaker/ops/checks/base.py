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
    """A snapshot as one check sees it.

    Exclusion is per resource type: a type's resources are hidden only in the scopes where that type's
    collection failed, so one denied service does not hide unrelated findings. Checks that join
    several types ask ``gap`` whether a joined type is missing where they look, and say UNKNOWN.
    """

    def __init__(
        self,
        by_type: dict[str, list[Resource]],
        accounts: dict[str, AccountInfo],
        failures: list[Failure],
        now: dt.datetime,
        needs: tuple[str, ...] = (),
        drills: dict[str, list[dict[str, Any]]] | None = None,
    ):
        self._by_type = by_type
        # Facts from outside the cloud, handed in by the audit's caller (checks never query the
        # database): application -> its recent successful DR drills, newest first (ops/drill_facts.py).
        self.drills = drills or {}
        self._failed: dict[tuple[str, str, str], Failure] = {(f.type, f.account, f.region): f for f in failures}
        self._needs = needs
        self._all_accounts = accounts
        self.now = now
        self._cache: dict[str, list[Resource]] = {}

    def failure(self, rtype: str, account: str, region: str) -> str | None:
        """Why ``rtype`` is missing in (account, region) (a global collection counts everywhere)."""
        f = self._failed.get((rtype, account, region)) or self._failed.get((rtype, account, GLOBAL))
        return f.reason() if f else None

    def gap(self, account: str, region: str, *types: str) -> str | None:
        """The first failed collection among ``types`` (default: all the check needs) in that scope."""
        return next((why for t in types or self._needs if (why := self.failure(t, account, region))), None)

    def gaps(self, account: str, *types: str) -> list[str]:
        """Every failed collection among ``types`` (default: the check's needs) in any of the account's
        regions, for checks whose answer spans regions."""
        info = self._all_accounts[account]
        return sorted({why for r in (*info.regions, GLOBAL) if (why := self.gap(account, r, *types))})

    def available(self, account: str, region: str) -> bool:
        return self.gap(account, region) is None

    def of(self, rtype: str) -> list[Resource]:
        if rtype not in self._cache:
            self._cache[rtype] = [
                r for r in self._by_type.get(rtype, []) if not self.failure(rtype, r.account, r.region)
            ]
        return self._cache[rtype]

    @property
    def accounts(self) -> list[AccountInfo]:
        """Accounts whose needed global collections succeeded (the runner reports the others)."""
        return [
            a
            for n, a in sorted(self._all_accounts.items())
            if not any((t, n, GLOBAL) in self._failed for t in self._needs)
        ]

    def account(self, name: str) -> AccountInfo:
        return self._all_accounts[name]

    def regions(self, account: str) -> list[str]:
        """The account's regions where every needed collection succeeded."""
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

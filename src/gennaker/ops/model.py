"""The in-memory shapes of an inventory: resources, collection failures and a snapshot of both."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

GLOBAL = "global"  # region of resources that are not regional (IAM, S3 listing, Route 53, ...)


@dataclass(eq=False)  # identity semantics: resources key dicts (workload groups)
class Resource:
    type: str
    account: str
    region: str
    id: str
    arn: str | None = None
    name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.type, self.account, self.region, self.id)

    @property
    def ref(self) -> str:
        """How findings name the resource: its ARN where one exists, else its id."""
        return self.arn or self.id


@dataclass(frozen=True)
class Failure:
    """A collection that failed for one (account, region, resource type), with the AWS reason."""

    account: str
    region: str
    type: str
    code: str
    message: str

    def reason(self) -> str:
        return f"{self.type} could not be collected in {self.account}/{self.region}: {self.code}: {self.message}"


@dataclass(frozen=True)
class AccountInfo:
    """What checks need to know about an account beyond its resources."""

    name: str
    account_id: str | None
    regions: tuple[str, ...]
    dr_region: str | None = None
    environment: str | None = None


@dataclass
class Snapshot:
    id: str
    created_at: dt.datetime
    accounts: dict[str, AccountInfo]
    resources: list[Resource] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    types: list[str] = field(default_factory=list)  # resource types this snapshot tried to collect
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        return sorted({r for a in self.accounts.values() for r in a.regions})

    def narrowed(self, regions: dict[str, set[str]]) -> Snapshot:
        """This snapshot seen through a narrower scope (accounts -> regions; global data kept), so a
        reused snapshot reports what a fresh collection of that scope would."""

        def inside(account: str, region: str) -> bool:
            return account in regions and (region == GLOBAL or region in regions[account])

        return Snapshot(
            self.id,
            self.created_at,
            {
                n: replace(a, regions=tuple(r for r in a.regions if r in regions[n]))
                for n, a in self.accounts.items()
                if n in regions
            },
            [r for r in self.resources if inside(r.account, r.region)],
            [f for f in self.failures if inside(f.account, f.region)],
            self.types,
            self.stats,
        )

    def by_type(self) -> dict[str, list[Resource]]:
        out: dict[str, list[Resource]] = defaultdict(list)
        for r in self.resources:
            out[r.type].append(r)
        return out


def jsonable(value: Any) -> Any:
    """AWS responses carry datetimes and bytes; snapshots are stored as JSON."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    t = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def tag_dict(tags: Any) -> dict[str, str]:
    """AWS spells tags as [{Key, Value}], [{key, value}] or a plain mapping."""
    if not tags:
        return {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    out: dict[str, str] = {}
    for t in tags:
        key = t.get("Key", t.get("key"))
        if key is not None:
            out[str(key)] = str(t.get("Value", t.get("value", "")))
    return out

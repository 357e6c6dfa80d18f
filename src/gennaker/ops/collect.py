"""Collect an inventory snapshot: accounts x regions x resource types, in parallel, bounded.

Each (account, region, type) is one task on a ThreadPoolExecutor of ``ops.max_workers`` threads.
A task that fails becomes a ``Failure`` carrying the AWS error code and message; nothing is dropped
silently, and the checks that needed the type report UNKNOWN with that reason.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, replace
from typing import Any

from botocore.exceptions import BotoCoreError

from gennaker.cloud.aws.session import AwsSessions
from gennaker.errors import CloudError, ConfigError
from gennaker.ops.collectors import COLLECTORS, DETAILS
from gennaker.ops.model import GLOBAL, AccountInfo, Failure, Resource, Snapshot
from gennaker.ops.registry import BY_NAME, TYPES, ResourceType
from gennaker.ops.scope import Scope, list_items
from gennaker.ops.settings import OpsSettings

Progress = Callable[[int, int, str], None]


def global_region(regions: Iterable[str]) -> str:
    """Global services answer in the partition's first region."""
    for r in regions:
        if r.startswith("cn-"):
            return "cn-north-1"
        if r.startswith("us-gov-"):
            return "us-gov-west-1"
    return "us-east-1"


def _fill(value: Any, account_id: str) -> Any:
    """Registry params may name the account: "{account_id}" inside strings, lists and dicts."""
    if isinstance(value, str):
        return value.replace("{account_id}", account_id)
    if isinstance(value, list):
        return [_fill(v, account_id) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, account_id) for k, v in value.items()}
    return value


def timed(rt: ResourceType, scope: Scope) -> tuple[list[Resource], float]:
    started = time.monotonic()
    return run_type(rt, scope), time.monotonic() - started


def run_type(rt: ResourceType, scope: Scope) -> list[Resource]:
    if rt.collector:
        return COLLECTORS[rt.collector](scope)
    client = scope.client(rt.service)
    items = list(list_items(client, rt.operation, rt.key, **_fill(rt.params, scope.account_id)))
    if rt.flatten:
        items = [sub for item in items for sub in item.get(rt.flatten, [])]
    if rt.owner_field:  # moto (and some shared-resource views) return items other accounts own
        items = [i for i in items if i.get(rt.owner_field) == scope.account_id]
    resources = [scope.from_item(rt, i) for i in items]
    if rt.detail and resources:
        DETAILS[rt.detail](scope, resources)
    return resources


@dataclass(frozen=True)
class _Task:
    account: str
    region: str  # API region
    stored: str  # region recorded on resources and failures
    rt: ResourceType


def _failure(task: _Task, exc: BaseException) -> Failure:
    code = exc.code if isinstance(exc, CloudError) else type(exc).__name__
    # Some endpoints answer errors with a whole HTML page; keep the reason readable.
    message = " ".join(str(exc).split())
    return Failure(task.account, task.stored, task.rt.name, code, message[:300])


def account_id(sessions: AwsSessions, name: str, region: str) -> str:
    configured = sessions.account(name).account_id
    if configured:
        return configured
    return str(sessions.client(name, region, "sts").get_caller_identity()["Account"])


def resolve_types(types: Iterable[str] | None) -> list[ResourceType]:
    if types is None:
        return list(TYPES)
    unknown = sorted(set(types) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"unknown resource type(s): {', '.join(unknown)}")
    return [BY_NAME[t] for t in sorted(set(types))]


def account_regions(sessions: AwsSessions, name: str, regions: list[str] | None) -> tuple[str, ...]:
    acct = sessions.account(name)
    wanted = list(regions) if regions else list(acct.regions)
    if acct.dr_region and acct.dr_region not in wanted:
        wanted.append(acct.dr_region)  # DR checks compare the primary regions with the DR region
    return tuple(wanted)


def audited_accounts(sessions: AwsSessions, accounts: list[str] | None) -> list[str]:
    """The accounts an inventory or audit reads: those named, or every configured AWS account. A
    ``kind: local`` account is this machine, not AWS: naming one is an error, not calls to AWS."""
    if not accounts:
        return sorted(n for n, a in sessions.config.accounts.items() if a.kind == "aws")
    for name in accounts:
        acct = sessions.config.accounts.get(name)
        if acct is not None and acct.kind != "aws":
            raise ConfigError(f"account '{name}' is kind {acct.kind}: the inventory and the audit read AWS accounts")
    return list(accounts)


@dataclass(frozen=True)
class Part:
    """One scope of a collection: an account's region, or its global types (``stored`` is GLOBAL).
    The in-process audit collects every part on one pool; the organization-wide audit (ops/fanout.py)
    makes each part a durable job. Both call ``collect_parts``: there is one collector."""

    account: str
    region: str  # API region
    stored: str  # region recorded on resources and failures
    types: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.account}/{self.stored}"


@dataclass
class PartResult:
    part: Part
    account_id: str | None  # None when it could not be resolved (every task of the part failed)
    resources: list[Resource]
    failures: list[Failure]
    durations: dict[str, float]
    tasks: int


def plan(
    sessions: AwsSessions, names: list[str], regions: list[str] | None, rtypes: list[ResourceType]
) -> tuple[dict[str, tuple[str, ...]], list[Part]]:
    """Each account's regions and the parts to collect: one per region, one for the global types."""
    scopes: dict[str, tuple[str, ...]] = {}
    parts: list[Part] = []
    for name in names:
        regs = account_regions(sessions, name, regions)
        scopes[name] = regs
        greg = global_region(regs)
        glob = tuple(rt.name for rt in rtypes if rt.scope == "global")
        if glob:
            parts.append(Part(name, greg, GLOBAL, glob))
        local = tuple(rt.name for rt in rtypes if rt.scope != "global")
        parts.extend(Part(name, r, r, local) for r in regs if local)
    return scopes, parts


def collect_parts(
    sessions: AwsSessions, settings: OpsSettings, parts: list[Part], progress: Progress | None = None
) -> list[PartResult]:
    """Collect ``parts`` on one pool of ``ops.max_workers`` threads; one result per part, in order."""
    ids: dict[str, str | BaseException] = {}
    results: list[PartResult] = []
    tasks: list[tuple[_Task, Scope, PartResult]] = []
    for part in parts:
        res = PartResult(part, None, [], [], {}, 0)
        results.append(res)
        plan_ = [_Task(part.account, part.region, part.stored, BY_NAME[t]) for t in part.types]
        if part.account not in ids:
            try:
                ids[part.account] = account_id(sessions, part.account, global_region([part.region]))
            except (CloudError, BotoCoreError) as exc:  # e.g. the role cannot be assumed: every task fails
                ids[part.account] = exc
        aid = ids[part.account]
        if isinstance(aid, BaseException):
            res.failures.extend(_failure(t, aid) for t in plan_)
            continue
        res.account_id = aid
        for t in plan_:
            # Clients are created here, on one thread: creating boto3 clients concurrently from one
            # session is not thread-safe. Creation failures (unknown service) fail that task only.
            try:
                sessions.client(t.account, t.region, t.rt.service)
            except (CloudError, BotoCoreError) as exc:
                res.failures.append(_failure(t, exc))
                continue
            tasks.append((t, Scope(sessions, settings, t.account, aid, t.region, t.stored), res))
            res.tasks += 1

    done = 0
    with ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="collect") as pool:
        futures = {pool.submit(timed, t.rt, scope): (t, res) for t, scope, res in tasks}
        for fut in as_completed(futures):
            t, res = futures[fut]
            try:
                found, took = fut.result()
                res.resources.extend(found)
                res.durations[f"{t.account}/{t.stored}/{t.rt.name}"] = round(took, 3)
            except Exception as exc:
                # Any error, not only AWS ones (a KeyError on an odd response), fails this one
                # collection with its reason; the others' results stand and the checks say UNKNOWN.
                res.failures.append(_failure(t, exc))
            done += 1
            if progress:
                progress(done, len(tasks), f"{t.account}/{t.stored}/{t.rt.name}")
    return results


def skeleton(sessions: AwsSessions, scopes: dict[str, tuple[str, ...]]) -> dict[str, AccountInfo]:
    """What is known of each account before collecting (its id if configured, else resolved later)."""
    out = {}
    for name, regs in scopes.items():
        acct = sessions.account(name)
        out[name] = AccountInfo(name, acct.account_id, regs, acct.dr_region, acct.environment)
    return out


def assemble(
    accounts: dict[str, AccountInfo],
    results: list[PartResult],
    rtypes: list[str],
    stats: dict[str, Any],
    snapshot_id: str | None = None,
    created_at: dt.datetime | None = None,
) -> Snapshot:
    """The snapshot of collected parts, in the same order whoever collected them and in what order."""
    infos: dict[str, AccountInfo] = {}
    for name, info in accounts.items():
        resolved = next((r.account_id for r in results if r.part.account == name and r.account_id), None)
        infos[name] = replace(info, account_id=resolved or info.account_id)
    resources = [r for res in results for r in res.resources]
    failures = [f for res in results for f in res.failures]
    durations = {k: v for res in results for k, v in res.durations.items()}
    stats = {
        **stats,
        "tasks": sum(res.tasks for res in results),
        "slowest": dict(sorted(durations.items(), key=lambda kv: -kv[1])[:8]),
    }
    resources.sort(key=lambda r: r.key)
    failures.sort(key=lambda f: (f.account, f.region, f.type))
    return Snapshot(
        snapshot_id or str(uuid.uuid4()),
        created_at or dt.datetime.now(dt.UTC),
        infos,
        resources,
        failures,
        list(rtypes),
        stats,
    )


def requested(accounts: list[str] | None, regions: list[str] | None) -> dict[str, Any]:
    """What was asked for (None: the configured accounts / each account's regions), so a reuse
    (--max-age) and a diff can tell snapshots of different scope apart."""
    return {"accounts": list(accounts) if accounts else None, "regions": list(regions) if regions else None}


def collect(
    sessions: AwsSessions,
    settings: OpsSettings,
    *,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
    types: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> Snapshot:
    started = time.monotonic()
    calls_before = Counter(sessions.calls)
    names = audited_accounts(sessions, accounts)
    if not names:
        raise ConfigError("no accounts configured: add an 'accounts:' section to gennaker.yml")
    rtypes = resolve_types(types)
    scopes, parts = plan(sessions, names, regions, rtypes)
    results = collect_parts(sessions, settings, parts, progress)
    calls = Counter(sessions.calls)
    calls.subtract(calls_before)
    stats = {
        "duration_s": round(time.monotonic() - started, 3),
        "calls": {k: v for k, v in sorted(calls.items()) if v},
        "requested": requested(accounts, regions),
    }
    return assemble(skeleton(sessions, scopes), results, [rt.name for rt in rtypes], stats)

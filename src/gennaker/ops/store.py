"""Snapshots and audits in the database: save, load, search, export and diff."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, desc, insert, select

from gennaker.errors import NotFound
from gennaker.ops.model import GLOBAL, AccountInfo, Failure, Resource, Snapshot
from gennaker.ops.registry import BY_NAME
from gennaker.ops.tables import ops_audits, ops_resources, ops_snapshots
from gennaker.store.db import Database

BATCH = 500


def _epoch(t: dt.datetime) -> float:
    return t.timestamp()


def save_snapshot(db: Database, snap: Snapshot) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(ops_snapshots).values(
                id=snap.id,
                created_at=_epoch(snap.created_at),
                accounts={
                    n: {
                        "account_id": a.account_id,
                        "regions": list(a.regions),
                        "dr_region": a.dr_region,
                        "environment": a.environment,
                    }
                    for n, a in snap.accounts.items()
                },
                types=snap.types,
                failures=[vars(f) for f in snap.failures],
                stats=snap.stats,
                resource_count=len(snap.resources),
            )
        )
        rows = [
            {
                "snapshot_id": snap.id,
                "type": r.type,
                "account": r.account,
                "region": r.region,
                "resource_id": r.id,
                "arn": r.arn,
                "name": r.name,
                "tags": r.tags,
                "attributes": r.attrs,
            }
            for r in snap.resources
        ]
        for i in range(0, len(rows), BATCH):
            conn.execute(insert(ops_resources), rows[i : i + BATCH])


def _snapshot_row(db: Database, snapshot_id: str | None) -> Any:
    q = select(ops_snapshots)
    q = q.where(ops_snapshots.c.id == snapshot_id) if snapshot_id else q.order_by(desc("created_at")).limit(1)
    with db.read() as conn:
        row = conn.execute(q).first()
    if row is None:
        raise NotFound(
            f"no inventory snapshot {snapshot_id}"
            if snapshot_id
            else "no inventory snapshot yet: run 'gennaker inventory collect'"
        )
    return row


def _resource(row: Any) -> Resource:
    return Resource(
        row.type,
        row.account,
        row.region,
        row.resource_id,
        row.arn,
        row.name,
        row.tags or {},
        row.attributes or {},
    )


def load_snapshot(db: Database, snapshot_id: str | None = None) -> Snapshot:
    """A stored snapshot (the newest when ``snapshot_id`` is None), resources included."""
    row = _snapshot_row(db, snapshot_id)
    with db.read() as conn:
        res = conn.execute(
            select(ops_resources).where(ops_resources.c.snapshot_id == row.id).order_by(ops_resources.c.id)
        ).all()
    accounts = {
        n: AccountInfo(n, a["account_id"], tuple(a["regions"]), a.get("dr_region"), a.get("environment"))
        for n, a in row.accounts.items()
    }
    return Snapshot(
        row.id,
        dt.datetime.fromtimestamp(row.created_at, dt.UTC),
        accounts,
        [_resource(r) for r in res],
        [Failure(**f) for f in row.failures],
        list(row.types),
        dict(row.stats),
    )


def snapshot_info(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "created_at": dt.datetime.fromtimestamp(row.created_at, dt.UTC).isoformat(),
        "accounts": sorted(row.accounts),
        "resource_count": row.resource_count,
        "failures": len(row.failures),
        "duration_s": row.stats.get("duration_s"),
    }


def list_snapshots(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    with db.read() as conn:
        rows = conn.execute(select(ops_snapshots).order_by(desc("created_at")).limit(limit)).all()
    return [snapshot_info(r) for r in rows]


def reusable_snapshot(
    db: Database, max_age_s: float, types: set[str], scope: dict[str, set[str]], now: dt.datetime
) -> Snapshot | None:
    """The newest snapshot younger than ``max_age_s`` that collected every needed type for exactly the
    accounts of ``scope`` (account -> regions wanted) and at least their regions, narrowed to ``scope``
    (a snapshot of other accounts, or missing a region, would audit something else than asked)."""
    with db.read() as conn:
        rows = conn.execute(
            select(ops_snapshots.c.id, ops_snapshots.c.types, ops_snapshots.c.accounts)
            .where(ops_snapshots.c.created_at >= now.timestamp() - max_age_s)
            .order_by(desc("created_at"))
        ).all()
    for row in rows:
        covers = set(row.accounts) == set(scope) and all(
            wanted <= set(row.accounts[a]["regions"]) for a, wanted in scope.items()
        )
        if types <= set(row.types) and covers:
            return load_snapshot(db, row.id).narrowed(scope)
    return None


@dataclass
class Query:
    type: str | None = None  # glob, e.g. "ec2.*"
    account: str | None = None
    region: str | None = None
    tags: list[str] = field(default_factory=list)  # "Key" (present) or "Key=Value"
    text: str | None = None  # case-insensitive substring of id, ARN, name, tags or attributes


def _matches(r: Resource, q: Query) -> bool:
    for t in q.tags:
        key, _, value = t.partition("=")
        if key not in r.tags or ("=" in t and r.tags[key] != value):
            return False
    if q.text:
        blob = " ".join([r.id, r.arn or "", r.name or "", json.dumps(r.tags), json.dumps(r.attrs, default=str)])
        if q.text.lower() not in blob.lower():
            return False
    return True


def search(db: Database, snapshot_id: str | None, q: Query, limit: int | None = None) -> list[Resource]:
    row = _snapshot_row(db, snapshot_id)
    stmt = select(ops_resources).where(ops_resources.c.snapshot_id == row.id)
    if q.type and not any(ch in q.type for ch in "*?["):
        stmt = stmt.where(ops_resources.c.type == q.type)
    if q.account:
        stmt = stmt.where(ops_resources.c.account == q.account)
    if q.region:
        stmt = stmt.where(ops_resources.c.region == q.region)
    out: list[Resource] = []
    with db.read() as conn:
        for r in conn.execute(stmt.order_by(ops_resources.c.id)):
            res = _resource(r)
            if (not q.type or fnmatch.fnmatchcase(res.type, q.type)) and _matches(res, q):
                out.append(res)
                if limit and len(out) >= limit:
                    break
    return out


def _scope_of(row: Any) -> tuple[frozenset[str], dict[str, frozenset[str]]]:
    """What a stored snapshot tried to collect: its types, and each account's regions."""
    return frozenset(row.types), {n: frozenset(a["regions"]) for n, a in row.accounts.items()}


def previous_snapshot_id(db: Database, snapshot_id: str) -> str:
    """The newest snapshot older than ``snapshot_id`` that tried to collect the same scope (types,
    accounts, regions): audits store partial snapshots, and a diff against one of those would
    report everything outside it as removed."""
    row = _snapshot_row(db, snapshot_id)
    with db.read() as conn:
        older = conn.execute(
            select(ops_snapshots.c.id, ops_snapshots.c.types, ops_snapshots.c.accounts)
            .where(ops_snapshots.c.created_at < row.created_at)
            .order_by(desc("created_at"))
        ).all()
    if not older:
        raise NotFound(f"snapshot {snapshot_id} is the oldest: nothing to compare it with")
    prev = next((p for p in older if _scope_of(p) == _scope_of(row)), None)
    if prev is None:
        raise NotFound(
            f"no earlier snapshot of the same scope (types, accounts, regions) as {snapshot_id}: "
            "name the one to compare with"
        )
    return str(prev.id)


def collected(snap: Snapshot) -> set[tuple[str, str, str]]:
    """(type, account, region) collected successfully; global types are keyed by region ``global``."""
    failed = {(f.type, f.account, f.region) for f in snap.failures}
    out = set()
    for name, info in snap.accounts.items():
        for t in snap.types:
            regions = [GLOBAL] if t in BY_NAME and BY_NAME[t].scope == "global" else list(info.regions)
            out |= {(t, name, r) for r in regions if (t, name, r) not in failed}
    return out


def _where(r: Resource) -> tuple[str, str, str]:
    """The collection a resource came from (S3 buckets carry their own region but are listed globally)."""
    global_type = r.type in BY_NAME and BY_NAME[r.type].scope == "global"
    return (r.type, r.account, GLOBAL if global_type else r.region)


def _changed(a: Any, b: Any, path: str = "") -> list[str]:
    """Dotted paths of the attributes that differ (top two levels; deeper changes name their parent)."""
    if isinstance(a, dict) and isinstance(b, dict) and path.count(".") < 1:
        return [p for k in sorted(set(a) | set(b)) for p in _changed(a.get(k), b.get(k), f"{path}{k}.")]
    return [path.rstrip(".")] if a != b else []


def diff(db: Database, old_id: str | None = None, new_id: str | None = None) -> dict[str, Any]:
    """Resources added, removed and changed (with changed attribute paths) from ``old`` to ``new``.
    Defaults: ``new`` is the newest snapshot, ``old`` the previous one of the same scope. Only the
    (type, account, region) collections both snapshots made successfully are compared: a resource
    outside one of them is unknown there, not added or removed."""
    new = load_snapshot(db, new_id)
    old = load_snapshot(db, old_id or previous_snapshot_id(db, new.id))
    both = collected(old) & collected(new)
    before = {r.key: r for r in old.resources if _where(r) in both}
    after = {r.key: r for r in new.resources if _where(r) in both}
    skipped = sorted("/".join(c) for c in (collected(old) | collected(new)) - both)

    def ident(r: Resource) -> dict[str, Any]:
        return {
            "type": r.type,
            "account": r.account,
            "region": r.region,
            "id": r.id,
            "arn": r.arn,
            "name": r.name,
        }

    changed = []
    for key in sorted(set(before) & set(after)):
        a, b = before[key], after[key]
        paths = _changed(a.attrs, b.attrs) + [
            f"tags.{t}" for t in sorted(set(a.tags) | set(b.tags)) if a.tags.get(t) != b.tags.get(t)
        ]
        if paths:
            changed.append({**ident(b), "changed": paths})
    return {
        "from": old.id,
        "to": new.id,
        "added": [ident(after[k]) for k in sorted(set(after) - set(before))],
        "removed": [ident(before[k]) for k in sorted(set(before) - set(after))],
        "changed": changed,
        "not_compared": skipped,  # type/account/region collected by only one of them (or failed)
    }


def delete_snapshot(db: Database, snapshot_id: str) -> None:
    with db.begin() as conn:
        conn.execute(delete(ops_resources).where(ops_resources.c.snapshot_id == snapshot_id))
        conn.execute(delete(ops_snapshots).where(ops_snapshots.c.id == snapshot_id))


def save_audit(db: Database, report: dict[str, Any], source: str | None = None) -> None:
    with db.begin() as conn:
        conn.execute(
            insert(ops_audits).values(
                id=report["audit_id"],
                created_at=dt.datetime.fromisoformat(report["generated_at"]).timestamp(),
                snapshot_id=report["snapshot_id"],
                score=report["summary"]["score"],  # None when nothing passed or failed
                summary=report["summary"],
                report=report,
                source=source,
            )
        )


def list_audits(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    cols = [
        ops_audits.c.id,
        ops_audits.c.created_at,
        ops_audits.c.snapshot_id,
        ops_audits.c.score,
        ops_audits.c.summary,
        ops_audits.c.source,
    ]
    with db.read() as conn:
        rows = conn.execute(select(*cols).order_by(desc("created_at")).limit(limit)).all()
    return [
        {
            "id": r.id,
            "created_at": dt.datetime.fromtimestamp(r.created_at, dt.UTC).isoformat(),
            "snapshot_id": r.snapshot_id,
            "score": r.summary.get("score", r.score),
            "by_status": r.summary.get("by_status"),
            "source": r.source,
        }
        for r in rows
    ]


def get_audit(db: Database, audit_id: str | None = None) -> dict[str, Any]:
    q = select(ops_audits.c.report)
    q = q.where(ops_audits.c.id == audit_id) if audit_id else q.order_by(desc("created_at")).limit(1)
    with db.read() as conn:
        row = conn.execute(q).first()
    if row is None:
        raise NotFound(f"no audit {audit_id}" if audit_id else "no audit yet: run 'gennaker audit'")
    return dict(row.report)

"""Snapshots stored in the database (migrations 0001 + 0002): search, export shapes and diff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gennaker.cloud.aws.session import AwsSessions
from gennaker.ops import store
from gennaker.ops.collect import collect
from gennaker.ops.model import AccountInfo, Failure, Resource, Snapshot
from gennaker.ops.settings import OpsSettings
from gennaker.store.db import Database, open_database

TYPES = ["ec2.instance", "ec2.volume", "s3.bucket"]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'g.db'}")


def test_snapshot_roundtrip_search_and_diff(db: Database, sessions: AwsSessions, aws: Callable[..., Any]) -> None:
    ec2, s3 = aws("ec2"), aws("s3")
    run = ec2.run_instances(
        ImageId="ami-12c6146b",
        MinCount=1,
        MaxCount=1,
        InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Application", "Value": "shop"}]}],
    )
    iid = run["Instances"][0]["InstanceId"]
    s3.create_bucket(Bucket="logs-bucket")
    first = collect(sessions, OpsSettings(), types=TYPES)
    store.save_snapshot(db, first)

    loaded = store.load_snapshot(db, first.id)
    assert {r.key for r in loaded.resources} == {r.key for r in first.resources}
    assert loaded.accounts["main"].account_id == "123456789012"

    by_tag = store.search(db, None, store.Query(tags=["Application=shop"]))
    assert [r.id for r in by_tag] == [iid]
    assert [r.id for r in store.search(db, None, store.Query(type="s3.*"))] == ["logs-bucket"]
    assert [r.id for r in store.search(db, None, store.Query(text="LOGS-b"))] == ["logs-bucket"]
    assert store.search(db, None, store.Query(type="ec2.instance", region="us-west-2")) == []

    # Change: tag the instance, delete the bucket, add a volume.
    ec2.create_tags(Resources=[iid], Tags=[{"Key": "Owner", "Value": "ops"}])
    s3.delete_bucket(Bucket="logs-bucket")
    vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
    second = collect(sessions, OpsSettings(), types=TYPES)
    store.save_snapshot(db, second)

    d = store.diff(db)  # newest against the one before
    assert (d["from"], d["to"]) == (first.id, second.id)
    assert [r["id"] for r in d["added"]] == [vol]
    assert [r["id"] for r in d["removed"]] == ["logs-bucket"]
    changed = {c["id"]: c["changed"] for c in d["changed"]}
    assert "tags.Owner" in changed[iid]
    assert [s["id"] for s in store.list_snapshots(db)] == [second.id, first.id]


def test_missing_snapshot_is_not_found(db: Database) -> None:
    from gennaker.errors import NotFound

    with pytest.raises(NotFound, match="no inventory snapshot yet"):
        store.load_snapshot(db)


def _scoped_snapshot(sid: str, accounts: dict[str, tuple[str, ...]]) -> Snapshot:
    infos = {n: AccountInfo(n, None, regs) for n, regs in accounts.items()}
    resources = [Resource("ec2.address", n, r, f"eip-{n}-{r}") for n, regs in accounts.items() for r in regs]
    return Snapshot(sid, dt.datetime.now(dt.UTC), infos, resources, [], ["ec2.address"])


def test_reuse_only_a_snapshot_of_the_same_accounts_covering_the_regions(db: Database) -> None:
    now = dt.datetime.now(dt.UTC)
    store.save_snapshot(db, _scoped_snapshot("two-regions", {"main": ("us-east-1", "us-west-2")}))
    types = {"ec2.address"}
    narrower = store.reusable_snapshot(db, 600, types, {"main": {"us-east-1"}}, now)
    assert narrower is not None and narrower.id == "two-regions"
    # narrowed to what was asked: the reused audit reports the same scope a fresh one would
    assert narrower.regions == ["us-east-1"] and [r.region for r in narrower.resources] == ["us-east-1"]
    assert store.reusable_snapshot(db, 600, types, {"main": {"us-east-1", "eu-west-1"}}, now) is None
    assert store.reusable_snapshot(db, 600, types, {"other": {"us-east-1"}}, now) is None
    assert store.reusable_snapshot(db, 600, types, {"main": {"us-east-1"}, "other": {"us-east-1"}}, now) is None
    store.save_snapshot(db, _scoped_snapshot("both", {"main": ("us-east-1",), "other": ("us-east-1",)}))
    # a snapshot of more accounts than asked is not reused either (it would audit them too)
    found = store.reusable_snapshot(db, 600, types, {"main": {"us-east-1"}}, now)
    assert found is not None and found.id == "two-regions"


def test_diff_compares_only_what_both_collected_and_defaults_to_same_scope(db: Database) -> None:
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    info = {"main": AccountInfo("main", None, ("us-east-1",))}

    def at(sid: str, minutes: int, types: list[str], ids: list[str], failures: list[Failure] | None = None) -> None:
        kind = {"eip": "ec2.address", "vol": "ec2.volume"}
        res = [Resource(kind[i.split("-")[0]], "main", "us-east-1", i) for i in ids]
        snap = Snapshot(sid, t0 + dt.timedelta(minutes=minutes), info, res, failures or [], types)
        store.save_snapshot(db, snap)

    full = ["ec2.address", "ec2.volume"]
    at("full-1", 0, full, ["eip-1", "vol-1"])
    at("audit-partial", 1, ["ec2.address"], ["eip-1"])  # an audit collects only what its checks need
    denied = Failure("main", "us-east-1", "ec2.volume", "AccessDenied", "no")
    at("full-2", 2, full, ["eip-1", "eip-2"], [denied])
    d = store.diff(db)
    assert d["from"] == "full-1" and d["to"] == "full-2"  # the partial audit snapshot is skipped
    assert [r["id"] for r in d["added"]] == ["eip-2"]
    assert d["removed"] == []  # vol-1 is unknown in full-2 (collection denied), not removed
    assert d["not_compared"] == ["ec2.volume/main/us-east-1"]
    # explicitly against the partial one: volumes are outside it, so nothing about them either
    d = store.diff(db, "audit-partial", "full-2")
    assert [r["id"] for r in d["added"]] == ["eip-2"] and d["removed"] == []

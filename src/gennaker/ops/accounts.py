"""The accounts view: the organization tree, which accounts Gennaker can reach, and what the stored
inventory and audits already say about each account (regions, applications, readiness score).

Sources, in order:

* the organization, read through the management account (``ops.organization.management_account``):
  ``describe_organization`` (the payer), ``list_roots`` then ``list_organizational_units_for_parent`` /
  ``list_accounts_for_parent`` down the tree, and each account's tags (``list_tags_for_resource``);
  members become accounts named ``org-<id>`` exactly as the audit names them (``discover_accounts``);
* the accounts of gennaker.yml, in the organization or not;
* reachability: each AWS account's credentials are used for real (role assumed, then
  ``sts get_caller_identity``); a failure is kept as its one-line reason;
* the newest stored snapshot holding the account (its regions, and applications named by the
  resources' tags) and the newest stored audit covering it (its score over that account's findings).
  Nothing is collected again here.

What cannot be read (Organizations denied, no organization configured) is carried as a reason, not
dropped. Environment: ``environment`` set in gennaker.yml, else the account's tag (key
``environment`` by default), else the nearest OU whose name is an environment word (prod, qa, ...).
"""

from __future__ import annotations

import datetime as dt
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError
from sqlalchemy import desc, select

from gennaker.cloud import naming
from gennaker.cloud.aws.session import AwsSessions
from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.errors import CloudError, ConfigError, NotFound
from gennaker.ops import store
from gennaker.ops.audit import score
from gennaker.ops.collect import audited_accounts, global_region
from gennaker.ops.findings import Finding
from gennaker.ops.model import GLOBAL, tag_dict
from gennaker.ops.organization import discover_accounts
from gennaker.ops.settings import OpsSettings, ops_settings
from gennaker.ops.tables import ops_audits, ops_resources, ops_snapshots
from gennaker.spec.config import Config
from gennaker.store.db import Database

# OU name words that name an environment (the word, lower case -> the environment shown).
OU_ENVIRONMENTS = {
    "prod": "prod",
    "production": "prod",
    "staging": "staging",
    "stage": "staging",
    "qa": "qa",
    "test": "qa",
    "dev": "dev",
    "development": "dev",
    "sandbox": "sandbox",
}
AUDITS_SEARCHED = 50  # newest stored audits looked through for each account's latest one
PROBE_THREADS = 8


@dataclass
class OrgUnit:
    id: str
    name: str
    path: str  # "Root/prod/web"
    parent_id: str


@dataclass
class AccountView:
    name: str  # the name Gennaker uses (gennaker.yml, or org-<id> for discovered members)
    account_id: str | None
    org_name: str | None = None  # the organization's name for it
    email: str | None = None
    ou_path: str | None = None  # None: not in the organization (or it could not be read)
    ou_id: str | None = None
    status: str | None = None  # the organization's ACTIVE / SUSPENDED / ...
    configured: bool = False  # in gennaker.yml (else discovered through the organization)
    payer: bool = False
    environment: str | None = None
    environment_source: str | None = None  # "gennaker.yml", "tag environment", "OU prod"
    reachable: bool | None = None  # None: not tried (excluded, not active)
    reach_error: str | None = None
    regions: list[str] = field(default_factory=list)
    active_regions: list[str] = field(default_factory=list)  # regions holding resources in the snapshot
    applications: list[str] = field(default_factory=list)
    snapshot_id: str | None = None
    snapshot_at: str | None = None
    audit_id: str | None = None
    audit_at: str | None = None
    score: float | None = None
    findings: int = 0  # the audit's findings about this account

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AccountsView:
    accounts: list[AccountView]
    units: list[OrgUnit] = field(default_factory=list)
    organization_id: str | None = None
    payer_id: str | None = None
    management_account: str | None = None
    organization_error: str | None = None  # why the organization is not shown

    def as_dict(self) -> dict[str, Any]:
        return {
            "organization_id": self.organization_id,
            "payer_id": self.payer_id,
            "management_account": self.management_account,
            "organization_error": self.organization_error,
            "units": [asdict(u) for u in self.units],
            "accounts": [a.as_dict() for a in self.accounts],
        }

    def find(self, key: str) -> AccountView:
        """An account by its name, its account id, or its name in the organization."""
        for match in (
            lambda a: a.name == key,
            lambda a: a.account_id == key,
            lambda a: a.org_name is not None and a.org_name == key,
        ):
            found = [a for a in self.accounts if match(a)]
            if found:
                return found[0]
        known = ", ".join(a.name for a in self.accounts) or "none"
        raise NotFound(f"no account named or numbered '{key[:100]}' (known: {known})")


@dataclass
class _Member:
    id: str
    name: str
    email: str | None
    status: str | None
    ou_path: str
    ou_id: str
    tags: dict[str, str] | None  # None: the tags could not be read
    tags_error: str | None = None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]  # one line, whatever the endpoint answered


def ou_environment(path: str, rules: dict[str, str]) -> tuple[str, str] | None:
    """(environment, OU name) of the nearest OU on ``path`` with an environment word in its name
    (``prod``, ``Prod-Workloads``, ``workloads_qa``)."""
    for ou in reversed(path.split("/")[1:]):
        for word in re.split(r"[^a-z0-9]+", ou.lower()):
            if word in rules:
                return rules[word], ou
    return None


def _read_tree(sessions: AwsSessions, mgmt: str) -> tuple[dict[str, Any], list[OrgUnit], list[_Member]]:
    region = global_region(sessions.account(mgmt).regions)
    client = sessions.client(mgmt, region, "organizations")
    org = client.describe_organization()["Organization"]
    units: list[OrgUnit] = []
    members: list[_Member] = []
    todo = [(r["Id"], r.get("Name") or "Root") for r in client.paginate("list_roots", "Roots")]
    while todo:
        parent, path = todo.pop(0)
        for a in client.paginate("list_accounts_for_parent", "Accounts", ParentId=parent):
            members.append(_Member(a["Id"], a.get("Name", ""), a.get("Email"), a.get("Status"), path, parent, None))
        for ou in client.paginate("list_organizational_units_for_parent", "OrganizationalUnits", ParentId=parent):
            units.append(OrgUnit(ou["Id"], ou["Name"], f"{path}/{ou['Name']}", parent))
            todo.append((ou["Id"], f"{path}/{ou['Name']}"))
    for m in members:
        try:
            m.tags = tag_dict(list(client.paginate("list_tags_for_resource", "Tags", ResourceId=m.id)))
        except CloudError as exc:  # the tree stands; the environment says why it is not from a tag
            m.tags_error = _reason(exc)
    return org, units, members


def _probe(sessions: AwsSessions, name: str) -> tuple[str | None, str | None]:
    """(account id, None) when the account answers with its credentials (role assumed), else
    (None, the reason)."""
    acct = sessions.account(name)
    region = global_region(acct.regions)
    try:
        return str(sessions.client(name, region, "sts").get_caller_identity()["Account"]), None
    except (CloudError, BotoCoreError) as exc:
        # the session (and the role assumed for it) is made with the first client: name the role
        first = isinstance(exc, CloudError) and exc.call in ("AssumeRole", "CreateClient")
        return None, (f"role {acct.role_arn} cannot be assumed: " if acct.role_arn and first else "") + _reason(exc)


def application_of(tags: dict[str, str], workload_tags: list[str]) -> str | None:
    """The application a resource belongs to: Gennaker's own tag, else a workload tag (not Name,
    which names anything) read the way clusters are named (``shop-web-v003`` -> ``shop``)."""
    if tags.get(TAG_APPLICATION):
        return tags[TAG_APPLICATION]
    for key in workload_tags:
        if key != "Name" and tags.get(key):
            return naming.parse(tags[key]).application or None
    return None


def _snapshot_facts(db: Database, names: set[str], workload_tags: list[str]) -> dict[str, dict[str, Any]]:
    """Per account: the newest snapshot holding it, its regions, the regions and applications of
    its resources there."""
    with db.read() as conn:
        rows = conn.execute(
            select(ops_snapshots.c.id, ops_snapshots.c.created_at, ops_snapshots.c.accounts).order_by(
                desc(ops_snapshots.c.created_at)
            )
        ).all()
        newest: dict[str, Any] = {}
        for row in rows:
            for name in set(row.accounts) & (names - set(newest)):
                newest[name] = row
        facts: dict[str, dict[str, Any]] = {}
        for name, row in newest.items():
            found = conn.execute(
                select(ops_resources.c.region, ops_resources.c.tags).where(
                    ops_resources.c.snapshot_id == row.id, ops_resources.c.account == name
                )
            ).all()
            apps = {application_of(r.tags or {}, workload_tags) for r in found}
            facts[name] = {
                "snapshot_id": row.id,
                "snapshot_at": dt.datetime.fromtimestamp(row.created_at, dt.UTC).isoformat(),
                "regions": list(row.accounts[name].get("regions") or []),
                "active_regions": sorted({r.region for r in found if r.region != GLOBAL}),
                "applications": sorted(a for a in apps if a),
            }
    return facts


def _audit_facts(db: Database, names: set[str]) -> dict[str, dict[str, Any]]:
    """Per account: the newest stored audit covering it, scored over its findings about that account."""
    with db.read() as conn:
        ids = conn.execute(select(ops_audits.c.id).order_by(desc(ops_audits.c.created_at)).limit(AUDITS_SEARCHED))
        audit_ids = [r.id for r in ids]
    facts: dict[str, dict[str, Any]] = {}
    for audit_id in audit_ids:
        if names <= set(facts):
            break
        report = store.get_audit(db, audit_id)
        covered = set(report.get("scope", {}).get("accounts") or []) & (names - set(facts))
        if not covered:
            continue
        findings = [Finding(**f) for f in report.get("findings", [])]
        for name in covered:
            mine = [f for f in findings if f.account == name]
            facts[name] = {
                "audit_id": report["audit_id"],
                "audit_at": report["generated_at"],
                "score": score(mine),
                "findings": len(mine),
            }
    return facts


def _environment(
    view: AccountView, configured: str | None, member: _Member | None, tag_key: str, rules: dict[str, str]
) -> None:
    if configured:
        view.environment, view.environment_source = configured, "gennaker.yml"
        return
    # tag keys are matched whatever their case: organizations spell it environment or Environment
    tag = next(
        ((k, v) for k, v in ((member.tags if member else None) or {}).items() if k.lower() == tag_key.lower() and v),
        None,
    )
    if member is not None and tag:
        view.environment, view.environment_source = tag[1], f"tag {tag[0]}"
        return
    by_ou = ou_environment(member.ou_path, rules) if member is not None else None
    if by_ou:
        view.environment, view.environment_source = by_ou[0], f"OU {by_ou[1]}"
    elif member is not None and member.tags_error:
        view.environment_source = f"tags unreadable: {member.tags_error}"


def accounts_view(
    db: Database,
    config: Config,
    *,
    environment_tag: str = "environment",
    ou_rules: dict[str, str] | None = None,
    max_attempts: int = 2,
) -> AccountsView:
    """Read the organization, test every AWS account's access, and add the stored facts.

    Works on a copy of ``config``: discovered members are added to that copy only. Few attempts per
    call (``max_attempts``): an account that does not answer is the finding here, not a reason to
    wait through the whole back-off ladder."""
    settings: OpsSettings = ops_settings(config.ops)
    rules = ou_rules or OU_ENVIRONMENTS
    sessions = AwsSessions(config.model_copy(deep=True), max_attempts=max_attempts)
    configured = set(audited_accounts(sessions, None))
    view = AccountsView(accounts=[])
    members: list[_Member] = []
    org = settings.organization
    if org is None:
        view.organization_error = "no organization configured (ops.organization.management_account in gennaker.yml)"
    else:
        view.management_account = org.management_account
        try:
            info, view.units, members = _read_tree(sessions, org.management_account)
            view.organization_id, view.payer_id = info.get("Id"), info.get("MasterAccountId")
            discover_accounts(sessions, settings)  # members as the audit names and reaches them
        except (CloudError, BotoCoreError, ConfigError) as exc:  # denied, not in one, unknown account
            view.organization_error = f"the organization could not be read: {_reason(exc)}"
    names = audited_accounts(sessions, None)
    with ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="accounts") as pool:
        probed = dict(zip(names, pool.map(lambda n: _probe(sessions, n), names), strict=True))
    by_id = {m.id: m for m in members}
    seen: set[str] = set()
    for name in names:
        acct = sessions.account(name)
        aid, error = probed[name]
        aid = aid or acct.account_id
        if name not in configured and aid is not None and aid in seen:
            continue  # a configured account without account_id in gennaker.yml, found again by id
        a = AccountView(name, aid, configured=name in configured, regions=list(acct.regions))
        a.reachable, a.reach_error = error is None, error
        member = by_id.get(aid or "")
        if member is not None:
            seen.add(member.id)
            a.org_name, a.email, a.status, a.ou_path, a.ou_id = (
                member.name,
                member.email,
                member.status,
                member.ou_path,
                member.ou_id,
            )
        _environment(a, acct.environment, member, environment_tag, rules)
        a.payer = aid is not None and aid == view.payer_id
        view.accounts.append(a)
        if aid:
            seen.add(aid)
    excluded = set(org.exclude) if org else set()
    for m in members:  # in the organization, but not an account Gennaker reaches: say why
        if m.id in seen:
            continue
        why = "excluded by ops.organization.exclude" if m.id in excluded else f"not active (status {m.status})"
        a = AccountView(f"org-{m.id}", m.id, m.name, m.email, m.ou_path, m.ou_id, m.status, reach_error=why)
        _environment(a, None, m, environment_tag, rules)
        a.payer = m.id == view.payer_id
        view.accounts.append(a)
    all_names = {a.name for a in view.accounts}
    snaps = _snapshot_facts(db, all_names, settings.workload_tags)
    audits = _audit_facts(db, all_names)
    for a in view.accounts:
        s = snaps.get(a.name)
        if s:
            a.snapshot_id, a.snapshot_at = s["snapshot_id"], s["snapshot_at"]
            a.regions = sorted(set(a.regions) | set(s["regions"]))
            a.active_regions, a.applications = s["active_regions"], s["applications"]
        for k, v in audits.get(a.name, {}).items():
            setattr(a, k, v)
    view.accounts.sort(key=lambda a: (a.ou_path is None, a.ou_path or "", not a.payer, a.name))
    return view


def scoped(view: AccountsView, readable: frozenset[str] | None) -> AccountsView:
    """What a caller restricted to some applications sees: the accounts holding one of them, with
    only those applications listed, and the OUs on those accounts' paths (None: everything)."""
    if readable is None:
        return view
    accounts = []
    for a in view.accounts:
        mine = [app for app in a.applications if app in readable]
        if mine:
            accounts.append(AccountView(**{**a.as_dict(), "applications": mine}))
    paths = {a.ou_path for a in accounts if a.ou_path}
    units = [u for u in view.units if any(p == u.path or p.startswith(u.path + "/") for p in paths)]
    return AccountsView(
        accounts,
        units,
        view.organization_id,
        view.payer_id,
        view.management_account,
        view.organization_error,
    )

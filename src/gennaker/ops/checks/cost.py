"""Cost management checks (the source document's go-live item "a cost and account management
system"): a budget covers every account, the application tag is an active cost-allocation tag,
untagged spend stays below ``costs.untagged_threshold``, and the accounts share one organization
(consolidated billing). Each check's metadata stands beside its function."""

from __future__ import annotations

from collections.abc import Iterator

from gennaker.ops.checks.base import Check, Inventory, Result, fail, ok, unknown
from gennaker.ops.settings import OpsSettings

SOURCE = "Go-live checklist: cost and account management"
DEFAULT_TAG = "gennaker:application"


def budgets_per_account(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    """An account is covered by a budget of its own, or by one in any audited account (the payer)
    that filters on its linked account id."""
    all_budgets = inv.of("budgets.budget")
    for info in inv.accounts:
        subject = inv.account_subject(info)
        own = [b.id for b in all_budgets if b.account == info.name]
        linked = [
            b.id
            for b in all_budgets
            if info.account_id and info.account_id in (b.attrs.get("CostFilters") or {}).get("LinkedAccount", [])
        ]
        if own or linked:
            yield ok(subject, f"covered by budget(s): {', '.join(sorted(set(own + linked)))}")
        else:
            yield fail(subject, "no budget covers this account (none in it, none filtering on its id)")


def allocation_tags_active(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        subject = inv.account_subject(info)
        tags = {t.id: t.attrs.get("Status") for t in inv.of("ce.cost_allocation_tag") if t.account == info.name}
        untagged = next((u for u in inv.of("ce.untagged_spend") if u.account == info.name), None)
        key = str(untagged.attrs.get("TagKey")) if untagged else DEFAULT_TAG
        status = tags.get(key)
        if status == "Active":
            yield ok(subject, f"cost-allocation tag {key} is active")
        elif status is None:
            yield fail(subject, f"{key} is not a cost-allocation tag (never seen on a billed resource?)")
        else:
            yield fail(subject, f"cost-allocation tag {key} is {status}: activate it in Billing")


def untagged_spend_below_threshold(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    for info in inv.accounts:
        subject = inv.account_subject(info)
        found = [u for u in inv.of("ce.untagged_spend") if u.account == info.name]
        if not found:
            yield unknown(subject, "untagged spend was not collected")
            continue
        a = found[0].attrs
        share, threshold = a.get("Share"), float(a.get("Threshold") or 0.1)
        if share is None:
            yield unknown(subject, "no spend grouped by the application tag")
        elif share > threshold:
            yield fail(subject, f"untagged spend {share:.1%} of {a.get('Total')} USD exceeds {threshold:.0%}")
        else:
            yield ok(subject, f"untagged spend {share:.1%} of {a.get('Total')} USD (threshold {threshold:.0%})")


def consolidated_billing(inv: Inventory, s: OpsSettings) -> Iterator[Result]:
    orgs = {o.account: o for o in inv.of("organizations.organization")}
    ids = {o.attrs.get("Id") for o in orgs.values() if o.attrs.get("InOrganization")}
    for info in inv.accounts:
        subject = inv.account_subject(info)
        org = orgs.get(info.name)
        if org is None or not org.attrs.get("InOrganization"):
            yield fail(subject, "not in an organization: billed on its own")
        elif len(ids) > 1:
            yield fail(
                subject, f"audited accounts are in {len(ids)} organizations ({', '.join(sorted(map(str, ids)))})"
            )
        else:
            yield ok(subject, f"consolidated billing through {org.attrs.get('MasterAccountId')}")


CHECKS: tuple[Check, ...] = (
    Check(
        id="golive.cost.budget_per_account",
        title="A budget covers every account",
        severity="medium",
        needs=("budgets.budget",),
        rationale="An account without a budget is where a cost surprise grows unnoticed.",
        remediation="gennaker budgets apply (costs.budgets.accounts in gennaker.yml), or a budget in the payer "
        "filtering on the account.",
        cli="gennaker budgets plan && gennaker budgets apply",
        source=SOURCE,
        fn=budgets_per_account,
    ),
    Check(
        id="golive.cost.allocation_tags_active",
        title="The application tag is an active cost-allocation tag",
        severity="medium",
        needs=("ce.cost_allocation_tag",),
        optional=("ce.untagged_spend",),
        rationale="Costs per application need the tag activated for cost allocation in the payer.",
        remediation="Activate the tag in Billing, Cost allocation tags.",
        cli="aws ce update-cost-allocation-tags-status --cost-allocation-tags-status "
        "TagKey=gennaker:application,Status=Active",
        source=SOURCE,
        fn=allocation_tags_active,
    ),
    Check(
        id="golive.cost.untagged_spend",
        title="Untagged spend is below the threshold",
        severity="low",
        needs=("ce.untagged_spend",),
        rationale="Spend no application owns cannot be charged back or questioned.",
        remediation="Tag the resources (gennaker costs --by application shows the untagged row).",
        cli="gennaker costs --by application",
        source=SOURCE,
        fn=untagged_spend_below_threshold,
    ),
    Check(
        id="golive.cost.consolidated_billing",
        title="Accounts are billed together in one organization",
        severity="medium",
        needs=("organizations.organization",),
        rationale="Consolidated billing gives one invoice, shared discounts and one place to watch cost.",
        remediation="Invite the accounts into one organization.",
        cli="aws organizations invite-account-to-organization --target Id=ACCOUNT,Type=ACCOUNT",
        source=SOURCE,
        fn=consolidated_billing,
    ),
)

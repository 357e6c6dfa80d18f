"""What the ``incidents.rules`` decide for an alarm: priority, dedup key, escalation policy, channels.

The first rule whose every criterion holds decides; what it leaves unset keeps the section's
defaults. Pure functions of the transition and the settings (and the clock, for business hours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from gennaker.cloud.provider import TAG_APPLICATION
from gennaker.ops.alarms.plan import TAG_TIER
from gennaker.ops.incidents.settings import IncidentSettings, Rule

if TYPE_CHECKING:
    from gennaker.ops.incidents.intake import AlarmTransition


@dataclass(frozen=True)
class Decision:
    rule: str | None
    priority: str
    dedup_key: str
    escalation: str | None
    channels: list[str]
    application: str | None


def alarm_key(account: str | None, region: str | None, alarm: str) -> str:
    return f"{account or '-'}|{region or '-'}|{alarm}"


# The alarms ``gennaker alarms apply`` creates carry their resource's tier and application in
# Gennaker's own tags (not the resource's ``criticality``/``application``): read those as a fallback,
# or no rule on criticality would ever match the alarms Gennaker recommends.
def application_of(t: AlarmTransition, settings: IncidentSettings) -> str | None:
    return t.application or t.tags.get(settings.application_tag) or t.tags.get(TAG_APPLICATION) or None


def criticality_of(t: AlarmTransition, settings: IncidentSettings) -> str | None:
    return t.tags.get(settings.criticality_tag) or t.tags.get(TAG_TIER) or None


def matches(rule: Rule, t: AlarmTransition, settings: IncidentSettings) -> bool:
    m = rule.match
    if m.alarm is not None and not fnmatchcase(t.alarm, m.alarm):
        return False
    for key, pattern in m.tags.items():
        if key not in t.tags or not fnmatchcase(t.tags[key], pattern):
            return False
    if m.criticality is not None and criticality_of(t, settings) not in m.criticality:
        return False
    if m.business_hours is not None and settings.business_hours.contains(t.at) != m.business_hours:
        return False
    if m.sources is not None and t.source not in m.sources:
        return False
    if m.accounts is not None and t.account not in m.accounts:
        return False
    return m.applications is None or application_of(t, settings) in m.applications


_FIELD = re.compile(r"\{(alarm|account|region|application|tag:[^{}]{1,128})\}")


def render_key(template: str, t: AlarmTransition, settings: IncidentSettings) -> str:
    """A rule's dedup key template filled in; a tag the alarm lacks reads as '-'."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("tag:"):
            return t.tags.get(name[4:], "-")
        if name == "application":
            return application_of(t, settings) or "-"
        return str(getattr(t, name) or "-")

    return _FIELD.sub(value, template)[:255]


def decide(t: AlarmTransition, settings: IncidentSettings) -> Decision:
    rule = next((r for r in settings.rules if matches(r, t, settings)), None)
    default_key = f"alarm:{alarm_key(t.account, t.region, t.alarm)}"[:255]
    return Decision(
        rule=rule.name if rule else None,
        priority=(rule.priority if rule and rule.priority else settings.default_priority),
        dedup_key=render_key(rule.dedup_key, t, settings) if rule and rule.dedup_key else default_key,
        escalation=(rule.escalation if rule and rule.escalation else settings.escalation),
        channels=list(rule.channels if rule and rule.channels is not None else settings.channels),
        application=application_of(t, settings),
    )

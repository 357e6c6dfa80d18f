"""Incidents: alarms become incidents that someone owns.

- ``intake``: ``AlarmTransition`` and ``record_transition``, the one path from the SNS hook, the
  poller and local alarm conditions into incidents (idempotent per transition).
- ``store``: incidents, their alarms and timeline; ack, resolve, note, assign, set_priority.
- ``rules``: priority, dedup key, escalation policy and channels from ``incidents.rules``.
- ``escalation``: level after level while nobody acknowledges, as durable jobs.
- ``poller``: the periodic read of alarm states; ``sns``: verification of SNS messages.

``job_handlers`` is what the composition root adds to ``Runtime.job_handlers``.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from gennaker.engine.jobs import JobHandler
from gennaker.ops.incidents.escalation import ESCALATE, escalate
from gennaker.ops.incidents.intake import RESOLVE_QUIET, resolve_quiet
from gennaker.ops.incidents.poller import POLL, ensure_polling, poll_alarms
from gennaker.ops.incidents.settings import IncidentSettings, incident_settings


def job_handlers(services: Any, settings: IncidentSettings) -> dict[str, JobHandler]:
    return {
        ESCALATE: partial(escalate, settings=settings),
        RESOLVE_QUIET: partial(resolve_quiet, settings=settings),
        POLL: partial(poll_alarms, services=services, settings=settings),
    }


__all__ = [
    "ESCALATE",
    "POLL",
    "RESOLVE_QUIET",
    "IncidentSettings",
    "ensure_polling",
    "incident_settings",
    "job_handlers",
]

"""The composition root: one place that wires database, config, stage types, services and engine.

The CLI, the server, the worker command and tests build a Runtime and pass it down; nothing below
reaches for globals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from gennaker.cloud.registry import kind_of
from gennaker.cloud.registry import upkeep as cloud_upkeep
from gennaker.cloud.tasks import bind_schemas
from gennaker.engine.events import EventHook, ExecutionEvent
from gennaker.engine.jobs import JobHandler, JobSettings
from gennaker.engine.runner import Engine, EngineSettings
from gennaker.engine.worker import Worker
from gennaker.errors import ValidationFailed
from gennaker.ops.alarms import conditions as alarm_conditions
from gennaker.ops.alarms.settings import AlarmSettings, alarm_settings
from gennaker.ops.fanout import job_handlers as audit_job_handlers
from gennaker.ops.incidents import IncidentSettings, ensure_polling, incident_settings
from gennaker.ops.incidents import job_handlers as incident_job_handlers
from gennaker.ops.notifications.service import Notifications
from gennaker.spec.config import Config, load_config
from gennaker.spec.models import Pipeline, StageConfig
from gennaker.spec.pipeline import load_pipeline, pipeline_from_text
from gennaker.spec.yamlload import load_yaml
from gennaker.stages import default_registry, skippable_types, stage_schemas
from gennaker.stages.base import StageType
from gennaker.stages.services import Services
from gennaker.store.db import Database, open_database
from gennaker.triggers.fire import Catalog
from gennaker.triggers.schedule import TriggerJobs
from gennaker.triggers.schedule import bootstrap as trigger_bootstrap


@dataclass
class Runtime:
    db: Database
    config: Config
    registry: dict[str, StageType]
    services: Services
    engine: Engine
    # Durable jobs by kind (gennaker.engine.jobs): every worker this runtime builds runs them. Each
    # subsystem adds its kinds here (notifications' deliveries, reminders, escalation timers).
    job_handlers: dict[str, JobHandler] = field(default_factory=dict)
    job_settings: JobSettings = field(default_factory=JobSettings.from_env)
    incidents: IncidentSettings = field(default_factory=IncidentSettings)  # the incidents: section
    alarms: AlarmSettings = field(default_factory=AlarmSettings)  # the alarms: section
    notifications: Any = None  # gennaker.ops.notifications.service.Notifications
    triggers: Any = None  # gennaker.triggers.schedule.TriggerJobs: schedules, image polls, chains

    @cached_property
    def schemas(self) -> dict[str, type[StageConfig]]:
        """Stage schemas bound to the configured accounts: a cloud stage's provider-specific fields
        are checked by its account kind's model when a document is loaded."""
        return bind_schemas(stage_schemas(self.registry), self.config)

    def load_pipeline(self, path: str) -> Pipeline:
        return self._channels_known(load_pipeline(path, self.schemas, self.config.limits))

    def pipeline_from_text(self, text: str, file: str = "<pipeline>") -> Pipeline:
        return self._channels_known(pipeline_from_text(text, self.schemas, file, self.config.limits))

    def _channels_known(self, pipeline: Pipeline) -> Pipeline:
        """A pipeline may subscribe only to channels gennaker.yml declares (file:line:column if not)."""
        channels = self.config.notifications.channels
        unknown = [i for i, s in enumerate(pipeline.notifications) if s.channel not in channels]
        if unknown and pipeline.text is not None:
            doc = load_yaml(pipeline.text, pipeline.source or "<pipeline>", self.config.limits)
            known = ", ".join(sorted(channels)) or "none declared in gennaker.yml"
            raise ValidationFailed(
                [
                    doc.problem(
                        ("notifications", i, "channel"),
                        f"unknown notification channel '{pipeline.notifications[i].channel}' (known: {known})",
                    )
                    for i in unknown
                ]
            )
        return pipeline

    @property
    def skippable(self) -> set[str]:
        return skippable_types(self.registry)

    def worker(self, threads: int = 4, worker_id: str | None = None) -> Worker:
        # Accounts whose provider needs upkeep (local: replace crashed instances) get it on every
        # worker; with none configured the worker runs no upkeep thread at all.
        needs = any(kind_of(self.config, name).upkeep for name in self.config.accounts)
        # The alarm poller is a job that schedules its successor; each worker start seeds the current
        # slot again in case that chain broke (idempotent by the slot's key).
        ensure_polling(self.db, self.incidents)
        alarm_conditions.ensure_evaluating(self.db, self.alarms)  # local alarm conditions, likewise
        with self.db.begin() as conn:  # the triggers' reconcile chain, likewise (one per time slot)
            trigger_bootstrap(conn, time.time())
        return Worker(
            self.engine,
            threads=threads,
            worker_id=worker_id,
            upkeep=(lambda: cloud_upkeep(self.services)) if needs else None,
            job_handlers=self.job_handlers,
            job_settings=self.job_settings,
        )


def settings_from_env() -> EngineSettings:
    """Engine timings, overridable for tests and tuning (GENNAKER_LEASE_SECONDS, ...)."""
    import os

    s = EngineSettings()
    for env, attr in (
        ("GENNAKER_LEASE_SECONDS", "lease"),
        ("GENNAKER_HEARTBEAT_SECONDS", "heartbeat"),
        ("GENNAKER_WORKER_TTL_SECONDS", "worker_ttl"),
        ("GENNAKER_SELF_CHECK_SECONDS", "self_check_every"),
    ):
        if os.environ.get(env):
            setattr(s, attr, float(os.environ[env]))
    return s


def build_runtime(
    db_url: str | None = None,
    config_path: str | None = None,
    config: Config | None = None,
    settings: EngineSettings | None = None,
) -> Runtime:
    cfg = config if config is not None else load_config(config_path)
    db = open_database(db_url)
    registry = default_registry()
    services = Services(config=cfg, db=db)
    if cfg.metrics.prometheus is not None:  # the canary stage's prometheus source reads these
        services.prometheus_url = cfg.metrics.prometheus.url
        services.prometheus_timeout = cfg.metrics.prometheus.timeout
    engine = Engine(db, registry, services, settings=settings or settings_from_env())
    rt = Runtime(db=db, config=cfg, registry=registry, services=services, engine=engine)
    # Notifications: deliveries and reminders are jobs every worker runs; the engine tells them of
    # pipelines' events only when a channel is declared (else there is nothing to tell).
    rt.notifications = Notifications.build(cfg, db, aws=services.aws if cfg.notifications.channels else None)
    rt.job_handlers.update(rt.notifications.job_handlers())
    # Triggers: cron, image and pipeline-chain firings are jobs; the engine tells the chain listener
    # when executions end (and notifications, when a channel is declared), in the ending transaction.
    rt.triggers = TriggerJobs(Catalog(rt.pipeline_from_text), find_images=_image_finder(services))
    rt.job_handlers.update(rt.triggers.handlers())
    listeners: list[tuple[EventHook, Callable[[ExecutionEvent], bool]]] = []
    if cfg.notifications.channels:
        listeners.append((rt.notifications.on_event, lambda _: True))
    listeners.append((rt.triggers.listener, TriggerJobs.wants))
    engine.on_event = tell_each(listeners)
    rt.incidents = incident_settings(cfg.incidents)  # a bad incidents: section fails here, before anything runs
    rt.job_handlers.update(incident_job_handlers(services, rt.incidents))
    rt.job_handlers.update(audit_job_handlers(cfg))  # organization-wide audit parts (ops/fanout.py)
    # Local alarm conditions: evaluated by a periodic job, their transitions taken in as alarms.
    rt.alarms = alarm_settings(cfg.alarms)
    alarm_conditions.check_conditions(cfg, rt.alarms)
    if rt.alarms.conditions:
        rt.job_handlers[alarm_conditions.EVALUATE] = partial(
            alarm_conditions.evaluate_conditions, services=services, settings=rt.alarms, incidents=rt.incidents
        )
    return rt


def tell_each(listeners: list[tuple[EventHook, Callable[[ExecutionEvent], bool]]]) -> EventHook:
    """Tell every listener that wants the event. A listener writes its rows in a savepoint of its own
    (``events.write_in_savepoint``), so one listener's failure is logged and undoes only its rows,
    never the others' or the change itself; its reads take none (see engine/events.py)."""

    def tell(conn: Connection, event: ExecutionEvent) -> None:
        for listen, wants in listeners:
            if not wants(event):
                continue
            try:
                listen(conn, event)
            except DBAPIError:
                raise  # the database failed a read: on PostgreSQL the transaction is lost (retried)
            except Exception:
                logging.getLogger("gennaker.engine").exception("%s failed on %s", listen, event.event)

    return tell


def _image_finder(services: Services) -> Any:
    def find(account: str, region: str, name: str, tags: dict[str, str]) -> list[tuple[str, str]]:
        from gennaker.cloud.registry import provider_for

        return [(i.id, i.created) for i in provider_for(services, account, region).find_images(name, tags)]

    return find

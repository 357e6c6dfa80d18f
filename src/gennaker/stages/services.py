"""What tasks may use, wired once per process by the host (CLI, server, worker) and passed down."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from gennaker.spec.config import Config
from gennaker.stages.processes import ProcessRegistry
from gennaker.store.db import Database


@dataclass
class Services:
    config: Config
    db: Database
    processes: ProcessRegistry = field(default_factory=ProcessRegistry)
    # Metric sources by name that the host wires in (a test's scripted series); None: the canary
    # stage builds them from its account (haproxy on local, CloudWatch on AWS) and prometheus_url.
    metric_sources: dict[str, Any] | None = None
    prometheus_url: str | None = None
    prometheus_timeout: float = 10.0  # seconds per request (gennaker.yml metrics.prometheus.timeout)
    _aws: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def aws(self) -> Any:
        """AWS clients for the configured accounts (created on first use: most pipelines need none)."""
        with self._lock:
            if self._aws is None:
                from gennaker.cloud.aws.session import AwsSessions

                self._aws = AwsSessions(self.config)
            return self._aws

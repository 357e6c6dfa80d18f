"""Notifications: notices sent to the channels declared in gennaker.yml (webhook, slack, email, sns).

A caller (a pipeline's event, an incident) calls ``enqueue`` inside its own transaction; each
delivery is then a durable job, retried with backoff and recorded attempt by attempt, that a worker
runs on threads of its own, so a failing channel never blocks the caller.
"""

from __future__ import annotations

from gennaker.ops.notifications.deliveries import DELIVER, Notice, enqueue, get_delivery, list_deliveries

__all__ = ["DELIVER", "Notice", "enqueue", "get_delivery", "list_deliveries"]

"""What starts pipelines without a person: pushes, schedules, other pipelines, new images, webhooks.

The document declares triggers (``gennaker.spec.triggers``); this package receives and verifies
deliveries (``git``, ``webhook``), fires schedules and image polls as durable jobs (``schedule``),
reacts to executions ending (``chain``), and starts each firing exactly once (``fire``): its key is
stored in the same transaction as the execution it starts.
"""

"""Notification channels' deliveries and their attempts.

Placeholder reserved so that parallel work keeps one linear chain; filled in by the change that
creates these tables. The schema is written out here as it was at this revision (not imported from
the live table modules).
"""

from __future__ import annotations

revision = "0007_notifications"
down_revision = "0006_canary"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

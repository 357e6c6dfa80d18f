"""Incidents, their timeline, escalation.

Placeholder reserved so that parallel work keeps one linear chain; filled in by the change that
creates these tables. The schema is written out here as it was at this revision (not imported from
the live table modules).
"""

from __future__ import annotations

revision = "0008_incidents"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

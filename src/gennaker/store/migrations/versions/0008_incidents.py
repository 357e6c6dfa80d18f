"""Incidents, the alarms they cover, their timeline; alarm transitions received and alarms' last states.

The schema is written out here as it was at this revision (not imported from the live table
modules), so that later revisions can change those modules and migrate with op.* calls.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_incidents"
down_revision = "0007_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("application", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.String(length=2), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("open_key", sa.String(length=255), nullable=True),
        sa.Column("rule", sa.String(length=100), nullable=True),
        sa.Column("escalation_policy", sa.String(length=100), nullable=True),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("assignee", sa.String(length=200), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=50), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("acknowledged_at", sa.Float(), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.Float(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("escalation_loop", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalation_job", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("open_key", name=op.f("uq_incidents_open_key")),
    )
    op.create_index("ix_incidents_status_priority", "incidents", ["status", "priority"], unique=False)
    op.create_index("ix_incidents_application_created_at", "incidents", ["application", "created_at"], unique=False)
    op.create_index("ix_incidents_dedup_key", "incidents", ["dedup_key"], unique=False)
    op.create_table(
        "incident_alarms",
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("alarm_key", sa.String(length=420), nullable=False),
        sa.Column("alarm", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=50), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.Column("dimensions", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("incident_id", "alarm_key", name=op.f("pk_incident_alarms")),
    )
    op.create_index("ix_incident_alarms_alarm_key", "incident_alarms", ["alarm_key"], unique=False)
    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_events")),
        sa.UniqueConstraint("key", name=op.f("uq_incident_events_key")),
    )
    op.create_index("ix_incident_events_incident_id_at", "incident_events", ["incident_id", "at"], unique=False)
    op.create_table(
        "alarm_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=50), nullable=True),
        sa.Column("alarm", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("previous", sa.String(length=20), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("incident_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alarm_transitions")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_alarm_transitions_fingerprint")),
    )
    op.create_index("ix_alarm_transitions_received_at", "alarm_transitions", ["received_at"], unique=False)
    op.create_table(
        "alarm_states",
        sa.Column("alarm_key", sa.String(length=420), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=True),
        sa.Column("region", sa.String(length=50), nullable=True),
        sa.Column("alarm", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("changed_at", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("alarm_key", name=op.f("pk_alarm_states")),
    )


def downgrade() -> None:
    op.drop_table("alarm_states")
    op.drop_index("ix_alarm_transitions_received_at", table_name="alarm_transitions")
    op.drop_table("alarm_transitions")
    op.drop_index("ix_incident_events_incident_id_at", table_name="incident_events")
    op.drop_table("incident_events")
    op.drop_index("ix_incident_alarms_alarm_key", table_name="incident_alarms")
    op.drop_table("incident_alarms")
    op.drop_index("ix_incidents_dedup_key", table_name="incidents")
    op.drop_index("ix_incidents_application_created_at", table_name="incidents")
    op.drop_index("ix_incidents_status_priority", table_name="incidents")
    op.drop_table("incidents")

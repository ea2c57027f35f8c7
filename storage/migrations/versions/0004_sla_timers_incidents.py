"""SLA timers per conversation or incident, and incidents grouping volume spikes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("priority", sa.String(length=4), nullable=True),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_report_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_key_state", ["key", "state"], unique=False)

    op.create_table(
        "sla_timers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("interaction_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("escalate_after", sa.Integer(), nullable=True),
        sa.Column("playbook", sa.String(length=200), nullable=True),
        sa.Column("priority", sa.String(length=4), nullable=True),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("armed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancel_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_sla_timers_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"], name=op.f("fk_sla_timers_incident_id_incidents")
        ),
        sa.ForeignKeyConstraint(
            ["interaction_id"],
            ["interactions.id"],
            name=op.f("fk_sla_timers_interaction_id_interactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sla_timers")),
        sa.UniqueConstraint("subject", name=op.f("uq_sla_timers_subject")),
    )
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.create_index("ix_sla_timers_state_due_at", ["state", "due_at"], unique=False)

    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("incident_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_interactions_incident_id"), ["incident_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_interactions_incident_id_incidents"),
            "incidents",
            ["incident_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_interactions_incident_id_incidents"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_interactions_incident_id"))
        batch_op.drop_column("incident_id")
    with op.batch_alter_table("sla_timers", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_timers_state_due_at")
    op.drop_table("sla_timers")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_key_state")
    op.drop_table("incidents")

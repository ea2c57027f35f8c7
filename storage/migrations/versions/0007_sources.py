"""Sources: rejected payloads, posts read per day, and checkpoints long enough for feeds.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checkpoints") as batch:
        batch.alter_column(
            "value", existing_type=sa.String(length=200), type_=sa.Text(), existing_nullable=False
        )
    op.create_table(
        "source_rejects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_rejects")),
    )
    op.create_index(op.f("ix_source_rejects_source"), "source_rejects", ["source"])
    op.create_table(
        "source_reads",
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("reads", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("source", "day", name=op.f("pk_source_reads")),
    )


def downgrade() -> None:
    op.drop_table("source_reads")
    op.drop_index(op.f("ix_source_rejects_source"), table_name="source_rejects")
    op.drop_table("source_rejects")
    with op.batch_alter_table("checkpoints") as batch:
        batch.alter_column(
            "value", existing_type=sa.Text(), type_=sa.String(length=200), existing_nullable=False
        )

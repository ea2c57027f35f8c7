"""Why a reply Earful logged never reached the platform (refused, or not sent within a day).

A reply is logged as an outbound interaction when the agent sends it, before the platform
has it. When its delivery fails for good, the reason is kept here: the contact history shows
it as not delivered, and the suggester does not learn from it. A retry that posts it clears it.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("undelivered", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("undelivered")

"""Which card opened a conversation's or incident's thread in Slack.

A message may hold several cards (a burst, as full cards or rows), all sharing its thread; a
later message of one of those conversations names the card it follows.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("card_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slack_messages", schema=None) as batch_op:
        batch_op.drop_column("card_id")

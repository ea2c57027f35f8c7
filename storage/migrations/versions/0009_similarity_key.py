"""What makes a judged mention alike for spike counts, in a column of its own.

The spike triggers count similar mentions over a window (15 minutes in the default playbooks)
for every batch; reading the key alone spares decoding each mention's whole classification.
Mentions judged before this revision get their key from their stored classification, by the
same rule as `bot.traffic.similarity_key` (written out here, as migrations must not change
when the code does).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_interactions = sa.table(
    "interactions",
    sa.column("id", sa.Integer),
    sa.column("classification", sa.JSON),
    sa.column("similarity_key", sa.String),
)


def _key(classification: dict[str, Any] | None) -> str | None:
    if not classification or not classification.get("classified"):
        return None
    flags = classification.get("flags") or []
    if flags:
        return "flags:" + ",".join(sorted(flags))
    intent = classification.get("intent")
    return f"intent:{intent['label']}" if intent else None


def upgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("similarity_key", sa.String(length=200), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_interactions.c.id, _interactions.c.classification).where(
            _interactions.c.classification.is_not(None)
        )
    ).all()
    keyed = [{"row_id": row.id, "key": _key(row.classification)} for row in rows]
    keyed = [row for row in keyed if row["key"] is not None]
    if keyed:
        connection.execute(
            _interactions.update()
            .where(_interactions.c.id == sa.bindparam("row_id"))
            .values(similarity_key=sa.bindparam("key")),
            keyed,
        )


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_column("similarity_key")

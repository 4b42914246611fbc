"""Regulators' negative and positive lists (projections of list.update statements).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from ledger.store import schema

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for t in ("negative_list", "positive_list"):
        schema.metadata.tables[t].create(op.get_bind())


def downgrade() -> None:
    for t in ("positive_list", "negative_list"):
        schema.metadata.tables[t].drop(op.get_bind())

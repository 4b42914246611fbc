"""Witness cosignatures of checkpoints.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from ledger.store import schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.tables["cosignatures"].create(op.get_bind())


def downgrade() -> None:
    schema.metadata.tables["cosignatures"].drop(op.get_bind())

"""Consumer scans of item codes: a table outside the ledger (not a projection, not
append-only), with bounded retention.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

from ledger.store import schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.tables["scans"].create(op.get_bind())


def downgrade() -> None:
    schema.metadata.tables["scans"].drop(op.get_bind())

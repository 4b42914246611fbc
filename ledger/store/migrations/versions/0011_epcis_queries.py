"""Named EPCIS 2.0 queries (``/epcis/queries``): a table outside the ledger, like scans.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

from ledger.store import schema

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.tables["epcis_queries"].create(op.get_bind())


def downgrade() -> None:
    schema.metadata.tables["epcis_queries"].drop(op.get_bind())

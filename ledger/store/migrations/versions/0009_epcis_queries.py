"""Named EPCIS 2.0 queries (``/epcis/queries``): a table outside the ledger, like scans.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from ledger.store import schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.tables["epcis_queries"].create(op.get_bind())


def downgrade() -> None:
    schema.metadata.tables["epcis_queries"].drop(op.get_bind())

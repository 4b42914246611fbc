"""An index of entries by kind and signer: the consumer page reads a product prefix's
``prefix.delegate`` entries by kind, which without it is a scan of the whole log on
PostgreSQL (34 pages/s on a 100k-entry ledger in ``bench api --postgres``).

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Migration 0001 creates entries from the current schema, index included.
    if "entries_kind_signer" not in {i["name"] for i in sa.inspect(op.get_bind()).get_indexes("entries")}:
        op.create_index("entries_kind_signer", "entries", ["kind", "signer"])


def downgrade() -> None:
    op.drop_index("entries_kind_signer", table_name="entries")

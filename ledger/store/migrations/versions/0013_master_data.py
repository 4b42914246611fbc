"""Master data: every version of each identifier's master data (a projection of the
``masterdata`` statements, new with this revision, so there is nothing to fill), and the
registered English name of parties (``nameEn``, new with this revision too).

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

from ledger.store import schema

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    schema.metadata.create_all(bind, tables=[schema.metadata.tables[t] for t in schema.MASTERDATA_TABLES])
    # Migration 0001 creates the parties table from the current schema, column included.
    if "name_en" not in {c["name"] for c in sa.inspect(bind).get_columns("parties")}:
        op.add_column("parties", sa.Column("name_en", sa.Text(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("parties") as batch:
        batch.drop_column("name_en")
    for t in reversed(schema.MASTERDATA_TABLES):
        schema.metadata.tables[t].drop(bind)

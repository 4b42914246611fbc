"""The customs codes parties' registrations name (a registry projection, rebuilt from
entries by ``suyuan reindex``).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

from ledger.store import schema

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TABLES = ("customs_codes",)


def upgrade() -> None:
    schema.metadata.create_all(op.get_bind(), tables=[schema.metadata.tables[t] for t in TABLES])


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(TABLES):
        schema.metadata.tables[t].drop(bind)

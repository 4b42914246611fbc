"""GS1 company prefixes and their delegations (registry projections), and the owner of each
private commitment; all rebuilt from entries by ``suyuan reindex``.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from ledger.store import schema

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TABLES = ("gs1_prefixes", "prefix_delegations", "private_commitments")


def upgrade() -> None:
    schema.metadata.create_all(op.get_bind(), tables=[schema.metadata.tables[t] for t in TABLES])


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(TABLES):
        schema.metadata.tables[t].drop(bind)

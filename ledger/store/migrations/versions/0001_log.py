"""The log (entries, Merkle nodes, checkpoints; append-only) and the registry projection.

Revision ID: 0001
Revises:
"""

from alembic import op

from ledger.store import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ("entries", "merkle_nodes", "checkpoints", "parties", "party_keys", "log_meta")


def upgrade() -> None:
    # create_all fires the same after_create listeners that install the append-only
    # triggers, so a migrated database and a create_all one cannot differ.
    schema.metadata.create_all(op.get_bind(), tables=[schema.metadata.tables[t] for t in TABLES])


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(TABLES):
        schema.metadata.tables[t].drop(bind)

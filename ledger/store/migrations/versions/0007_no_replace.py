"""SQLite: refuse an INSERT over an existing row of the log tables (REPLACE deletes a row
without firing DELETE triggers). PostgreSQL: party columns that hold what an event names
(an owning party may be any URI) become TEXT, so a long one is not a failed batch.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from ledger.store import schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, column): String(64) before this revision, TEXT from it (SQLite ignores lengths).
WIDENED = (("current_state", "owner"), ("finding_parties", "party"))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        # create_all (migration 0001 on a new ledger) already installed them: IF NOT EXISTS.
        for t in schema.LOG_TABLES:
            bind.exec_driver_sql(schema.sqlite_no_replace_ddl(t))
    elif bind.dialect.name == "postgresql":
        for table, column in WIDENED:
            op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(64))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for t in schema.LOG_TABLES:
            bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {t}_no_replace")
    elif bind.dialect.name == "postgresql":
        for table, column in WIDENED:
            op.alter_column(table, column, type_=sa.String(64), existing_type=sa.Text())

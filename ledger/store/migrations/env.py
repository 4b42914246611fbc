"""Alembic environment: runs on the connection the ledger hands it (see store/migrate.py)."""

from alembic import context

from ledger.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()

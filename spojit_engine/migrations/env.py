"""Alembic environment: runs on the connection ``spojit_engine.db.migrate`` hands it."""

from alembic import context

from spojit_engine.metering.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()

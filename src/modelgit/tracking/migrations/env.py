"""Alembic's entry point, run only programmatically: the caller passes an open connection in
``config.attributes["connection"]`` (and holds the lock that keeps two processes from migrating
at once). Nothing here configures logging: the library leaves its host's logging alone."""

from __future__ import annotations

from alembic import context

from modelgit.tracking.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()

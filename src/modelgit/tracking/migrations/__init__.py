"""Alembic migrations of the usage tables, run by :func:`modelgit.tracking.store.migrate` on open."""

"""Alembic's environment: run by `command.upgrade` on the connection `migrations.upgrade` passes in, already in
its locked transaction (so Alembic begins and commits nothing of its own)."""

from __future__ import annotations

from alembic import context

from aomi_runtime.backends.migrations import VERSION_TABLE, package_metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("aomi-runtime's migrations run on a connection it passes in: use `aomi-runtime db upgrade`.")
context.configure(connection=connection, target_metadata=package_metadata(), version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()

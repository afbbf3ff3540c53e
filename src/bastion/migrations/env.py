"""Alembic environment: Bastion always passes an open connection (see bastion.platform.migrate)."""

from alembic import context

import bastion.bootstrap  # noqa: F401  (registers every context's tables)
from bastion.platform.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
with context.begin_transaction():
    context.run_migrations()

"""Alembic's environment: it runs on the connection ``nudge.store.schema`` hands it (inside the
transaction that holds the migration lock), with every table model as the target."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import nudge.store  # noqa: F401  (every table module, so that the metadata is whole)
from nudge.errors import ConfigurationError
from nudge.store.schema import include_object

connection = context.config.attributes.get("connection")
if connection is None:
    raise ConfigurationError("run the migrations with `nudge db upgrade`, not Alembic's own command")
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_object=include_object(connection.dialect.name),
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

"""Alembic's environment: runs on the connection :mod:`giqa.infra.db.migrate` hands over (no alembic.ini).

``render_as_batch`` lets later migrations alter tables on SQLite (which rebuilds a table to alter it).
"""

from __future__ import annotations

from alembic import context

from giqa.infra.db.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through giqa.infra.db.migrate (giqa db upgrade), not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()

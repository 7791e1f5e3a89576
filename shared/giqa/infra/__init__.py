"""The only code that does I/O to the platform's stores: the database (:mod:`giqa.infra.db`) and object
storage (:mod:`giqa.infra.storage`). The pipeline, metrics and synth stay pure and import none of it.

Needs the ``services`` extra (SQLAlchemy, Alembic, psycopg, minio); nothing here is imported by ``giqa``
itself, so the core installs without them.
"""

"""The run database: SQLAlchemy 2 models (:mod:`.models`), engines and sessions (:mod:`.engine`), Alembic
migrations (:mod:`.migrate`) and the keyword-only data-access functions every service uses (:mod:`.dal`).

Postgres in a cluster, a SQLite file embedded; both go through the same migrations and the same functions.
"""

from giqa.infra.db.engine import engine_from_settings, make_engine, make_sessionmaker, session_scope

__all__ = ["engine_from_settings", "make_engine", "make_sessionmaker", "session_scope"]

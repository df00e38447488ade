"""Alembic environment: runs on a connection handed in by :func:`migrations.upgrade`, or, through
the alembic CLI (``alembic.ini`` at the repository root), on ``sqlalchemy.url`` when the ini sets
one, else on the settings' database (``TAGSCOPE_DATABASE_URL``, ``tagscope.toml``, the home's
SQLite file). The target is the whole schema: :mod:`core.schema` defines every table; the
full-text objects over ``photo_text`` (migration 0013: an FTS5 table and its vocabulary on SQLite,
expression indexes on PostgreSQL) are no model's, and autogenerate leaves them alone
(:func:`migrations.include_name`)."""

from alembic import context
from sqlalchemy import create_engine, pool

from core.schema import Base
from migrations import include_name

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from core.settings import load_settings

    return load_settings().db_url


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                          include_name=include_name)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata,
                      literal_binds=True, render_as_batch=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

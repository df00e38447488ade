"""full-text search of the words in photos: indexes over photo_text.folded

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-09 00:00:00

SQLite: ``photo_text_fts``, an FTS5 table over ``photo_text.folded`` with photo_text as its
external content (rowid = photo_text.id; nothing stored twice but the index), kept in step by
three triggers on photo_text (insert, delete, update: cascaded deletes fire them too), and
``photo_text_fts_vocab`` (fts5vocab) listing each stored word once, which typo-tolerant search
reads. Rows already there are indexed (``rebuild``). A later migration that copies photo_text
(a batch operation on SQLite) drops the triggers with it and must create them again.

PostgreSQL: a GIN index on ``to_tsvector('simple', folded)`` (the 'simple' configuration: no
stemming, no stop words; the text is folded already), and, when the ``pg_trgm`` extension is
there or can be created (it is a trusted extension since PostgreSQL 13: the database's owner may
create it), a GIN trigram index on ``folded`` for typo-tolerant search; without it search is exact
and by prefix only, and ``CREATE EXTENSION pg_trgm; CREATE INDEX ix_photo_text_fts_trigrams ON
photo_text USING gin (folded gin_trgm_ops);`` adds it later.

None of these is described by core/schema: migrations/env.py keeps autogenerate off them
(core.schema.full_text_object).
"""
import sqlalchemy as sa
from alembic import context, op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE photo_text_fts USING fts5(folded, content='photo_text', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE photo_text_fts_vocab USING fts5vocab(photo_text_fts, 'row')",
    "CREATE TRIGGER photo_text_fts_insert AFTER INSERT ON photo_text BEGIN "
    "INSERT INTO photo_text_fts(rowid, folded) VALUES (new.id, new.folded); END",
    "CREATE TRIGGER photo_text_fts_delete AFTER DELETE ON photo_text BEGIN "
    "INSERT INTO photo_text_fts(photo_text_fts, rowid, folded) VALUES ('delete', old.id, old.folded); END",
    "CREATE TRIGGER photo_text_fts_update AFTER UPDATE ON photo_text BEGIN "
    "INSERT INTO photo_text_fts(photo_text_fts, rowid, folded) VALUES ('delete', old.id, old.folded); "
    "INSERT INTO photo_text_fts(rowid, folded) VALUES (new.id, new.folded); END",
    "INSERT INTO photo_text_fts(photo_text_fts) VALUES ('rebuild')",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS photo_text_fts_update",
    "DROP TRIGGER IF EXISTS photo_text_fts_delete",
    "DROP TRIGGER IF EXISTS photo_text_fts_insert",
    "DROP TABLE IF EXISTS photo_text_fts_vocab",
    "DROP TABLE IF EXISTS photo_text_fts",
]


def _trigrams_available(bind) -> bool:
    """pg_trgm is installed, or could be created here (in a savepoint: a refusal leaves the
    migration's transaction usable)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        return True
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except sa.exc.DBAPIError:
        return False
    return True


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_UP:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute("CREATE INDEX ix_photo_text_fts ON photo_text USING gin (to_tsvector('simple', folded))")
        if not context.is_offline_mode() and _trigrams_available(op.get_bind()):
            op.execute("CREATE INDEX ix_photo_text_fts_trigrams ON photo_text USING gin (folded gin_trgm_ops)")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == 'sqlite':
        for statement in SQLITE_DOWN:
            op.execute(statement)
    elif dialect == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_photo_text_fts_trigrams")
        op.execute("DROP INDEX IF EXISTS ix_photo_text_fts")

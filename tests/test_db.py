"""The schema comes from Alembic migrations and behaves the same on SQLite and PostgreSQL."""

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.db import Database, table_names
from core.errors import TagscopeError
from core.schema import (
    TAGGED,
    Image,
    Job,
    Label,
    Tag,
    get_or_create_model_version,
    path_key,
)
from migrations import current_revision, get_database, head, upgrade

from .commands import run_cli


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path}/t.sqlite")
    else:
        database = Database(request.getfixturevalue("postgres_url"))
    yield database
    database.dispose()


def test_migrations_create_every_table(db):
    assert current_revision(db) is None
    upgrade(db)
    assert current_revision(db) == head()
    assert {"images", "labels", "model_versions", "tags", "jobs"} <= set(table_names(db))


def test_tags_roundtrip_and_cascade_with_the_image(db):
    upgrade(db)
    raw = "/photos/caf\udce9.jpg".encode("utf-8", "surrogateescape")
    with db.session() as s:
        mv = get_or_create_model_version(s, "abc123", "synthetic", 128)
        img = Image(path="/photos/caf\\xe9.jpg", path_raw=raw, path_key=path_key(raw), size_bytes=5_000_000_000,
                    status=TAGGED, model_version_id=mv.id)
        label = Label(name="red circle")
        s.add_all([img, label])
        s.flush()
        s.add(Tag(image_id=img.id, label_id=label.id, model_version_id=mv.id, score=0.42))
        s.add(Job(kind="tag", total=1, params={"tag": {"model": "synthetic"}}))
    with db.session() as s:
        img = s.scalars(select(Image)).one()
        assert img.fs_path == "/photos/caf\udce9.jpg" and img.size_bytes == 5_000_000_000
        assert s.scalars(select(Tag)).one().score == pytest.approx(0.42)
        assert s.scalars(select(Job)).one().params == {"tag": {"model": "synthetic"}}
        s.delete(img)
    with db.session() as s:
        assert s.scalars(select(Tag)).all() == []


def test_same_path_cannot_be_registered_twice(db):
    upgrade(db)
    with pytest.raises(IntegrityError):
        with db.session() as s:
            for _ in range(2):
                s.add(Image(path="/a.jpg", path_raw=b"/a.jpg", path_key=path_key(b"/a.jpg")))
                s.flush()


def test_embedded_sqlite_migrates_itself_and_uses_wal(tmp_path):
    db = get_database(f"sqlite:///{tmp_path}/auto.sqlite")
    assert current_revision(db) == head()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_server_database_asks_for_db_upgrade(postgres_url):
    with pytest.raises(TagscopeError, match="tagscope db upgrade"):
        get_database(postgres_url)


def test_db_upgrade_command_migrates_postgresql(postgres_url, tmp_path):
    out = run_cli("db", "upgrade", home=tmp_path, TAGSCOPE_DATABASE_URL=postgres_url)
    assert f"-> {head()}" in out.stdout
    assert run_cli("db", "current", home=tmp_path, TAGSCOPE_DATABASE_URL=postgres_url).stdout.strip() == \
        head()


def test_unreachable_database_is_one_clear_line(tmp_path):
    proc = run_cli("status", home=tmp_path, check=False,
                   TAGSCOPE_DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "TAGSCOPE_DATABASE_URL" in proc.stderr


def test_a_database_gone_mid_command_is_one_clear_line(capsys):
    """Past what waits for it (core.outage), a database outage in the middle of a command ends it
    with one line and exit status 2, not a traceback; any other error is left alone."""
    from sqlalchemy import create_engine

    from tagscope.common import fail_cleanly

    engine = create_engine("postgresql://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2})

    @fail_cleanly
    def command(fail: Exception | None = None) -> None:
        if fail is not None:
            raise fail
        with engine.connect():  # refused: a real driver error, as a stopped server gives
            pass

    with pytest.raises(SystemExit) as stopped:
        command()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the database stopped answering ("), err
    assert "refused" in err and "run the same command again" in err
    with pytest.raises(ValueError):
        command(ValueError("not an outage"))


def test_the_migrations_build_exactly_the_models_schema(db):
    """Every table, column and index the models declare comes from a migration (0007 added the
    media, video_frames and stack columns): autogenerate finds nothing to add or drop."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from core.schema import Base  # every table (tests/test_schema.py: and only those env.py sees)
    from migrations import include_name  # env.py's: the full-text objects of migration 0013 are no model's

    upgrade(db)
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"include_name": include_name}), Base.metadata)
    assert [d for d in diffs if d[0] in ("add_table", "remove_table", "add_column", "remove_column",
                                         "add_index", "remove_index")] == []

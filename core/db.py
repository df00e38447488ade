"""SQL storage: SQLAlchemy 2 typed models and the one session helper.

The schema is created and changed only by Alembic migrations (``migrations/``); the embedded
SQLite default migrates itself on first use, a server database with ``tagscope db upgrade``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from core.errors import TagscopeError
from core.outage import server_connect_args

# Image states. A tagged image has scores from ``model_version_id``; a duplicate has the same
# bytes as ``duplicate_of`` and shares its tags; a failed one has an ``error`` reason; a missing
# one was registered under a folder that was tagged again and is no longer there (kept, so its
# tags come back if the file does).
PENDING, TAGGED, FAILED, DUPLICATE, MISSING = "pending", "tagged", "failed", "duplicate", "missing"
IMAGE_STATES = (PENDING, TAGGED, FAILED, DUPLICATE, MISSING)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; every time stored is UTC)."""
    return value if value is None or value.tzinfo else value.replace(tzinfo=timezone.utc)


def iso_utc(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 with its UTC offset, the same on SQLite and PostgreSQL."""
    return as_utc(value).isoformat() if value else None


def path_key(raw: bytes) -> str:
    """Fixed-length unique key of a file path (paths can be longer than an index allows)."""
    return hashlib.sha256(raw).hexdigest()


class Base(DeclarativeBase):
    pass


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[str] = mapped_column(Text)
    embed_dim: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The version search serves is the one activated last (tagger.versions): a new version's
    # tags and index are built beside the active one's, which serves until the switch.
    active_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(primary_key=True)
    # ``path`` is for people (non-UTF-8 bytes shown as \xNN); ``path_raw`` reopens the file.
    path: Mapped[str] = mapped_column(Text)
    path_raw: Mapped[bytes] = mapped_column(LargeBinary)
    path_key: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    content_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=PENDING, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"))
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    tagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The job that last stored this image's state: a job's progress is a count of its images.
    job_id: Mapped[int | None] = mapped_column(Integer)
    # Files of one shot share it (a RAW and its JPEG, a Live Photo's still and video: same folder,
    # same name): core.media.stacks.stack_key; search and browsing show a stack once.
    stack_key: Mapped[str | None] = mapped_column(String(64), index=True)

    __table_args__ = (Index("ix_images_job_id_status", "job_id", "status"),)

    @property
    def fs_path(self) -> str:
        """The path as the OS wants it (surrogate escapes restore non-UTF-8 bytes)."""
        return os.fsdecode(self.path_raw)


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(32), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # pending: being scored (its tags hidden until the switch); active; removing (hidden at once).
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_label_version_score", "label_id", "model_version_id", "score"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)


class Feedback(Base):
    """A person's verdict on a label of a photo: ``confirm`` (also a tag added by hand) or
    ``reject``; ``source`` is ``user`` or ``import`` (keywords read from XMP/IPTC). The label is
    text, not a vocabulary entry: any tag can be confirmed, whether the model scores it or not."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_label", "label"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(String(200), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """An image's embedding under one model version: the source of truth the vector index is
    built from (float16 bytes; ``patches`` [P, D] only for models with a local stream)."""

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True, index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    patches: Mapped[bytes | None] = mapped_column(LargeBinary)


class IndexChange(Base):
    """An entry of a model version's index change log: the image's embedding was stored, replaced
    or dropped. Written in the same transaction as the change, in commit order (:mod:`indexer.log`);
    every copy of the index applies the entries after its own position (reading the image's
    current state, so replaying is harmless); entries every live copy has applied are dropped."""

    __tablename__ = "index_changes"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are positions: never reused after a trim

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(Integer)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    runner: Mapped[str | None] = mapped_column(String(16))  # in-process | workers
    schedule_id: Mapped[int | None] = mapped_column(Integer)
    # A queued or scanning job's lease (its scan runs on a worker; see tagger.jobs.leases).
    worker: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class LabelEmbedding(Base):
    """A label text's embedding under one model version (float32), computed once and reused by
    every run, process and worker (indexer.text_store)."""

    __tablename__ = "label_embeddings"

    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    text_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the text
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class JobTask(Base):
    """One task of a job: a few hundred image ids, leased by the worker running it."""

    __tablename__ = "job_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    image_ids: Mapped[bytes] = mapped_column(LargeBinary)  # int64 array
    size: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    worker: Mapped[str | None] = mapped_column(String(255))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_job_tasks_state_lease", "state", "lease_until"),)


class Schedule(Base):
    """Periodic re-tagging of some folders with one model spec."""

    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    paths: Mapped[list[str]] = mapped_column(JSON)
    every_s: Mapped[int] = mapped_column(Integer)
    spec: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    next_run_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_job_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# -- engine and sessions ---------------------------------------------------------------------

def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers (web) never block the tagging writer
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


class Database:
    """Engine + session factory for one URL; ``with db.session() as s:`` commits or rolls back."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = make_url(url)
        except Exception:
            raise TagscopeError(f"bad database URL {url!r}: use e.g. sqlite:///path/tagscope.sqlite or "
                                "postgresql://user@host/dbname (TAGSCOPE_DATABASE_URL)") from None
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30}
        else:  # a connection the server dropped (a restart) is replaced, not used; connecting gives up (core.outage)
            kwargs.update(pool_pre_ping=True, connect_args=server_connect_args(parsed))
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except ModuleNotFoundError as exc:
            raise TagscopeError(f"no driver for {parsed.drivername} ({exc.name} missing): "
                                "pip install 'tagscope[postgres]'") from None
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    # -- migrations -------------------------------------------------------------------------
    def current_revision(self) -> str | None:
        from migrations import current_revision  # plain SQL: no Alembic import at every start

        with self.engine.connect() as conn:
            return current_revision(conn)

    def upgrade(self, revision: str = "head") -> None:
        """Run Alembic migrations up to ``revision``."""
        from alembic import command

        with self.engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def ensure_schema(self) -> None:
        """Migrate the embedded SQLite default on first use; ask for ``db upgrade`` elsewhere."""
        try:
            current = self.current_revision()
        except Exception as exc:
            raise TagscopeError(f"cannot connect to the database {self.engine.url!r} "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                                "check TAGSCOPE_DATABASE_URL and that the server is running") from None
        head = head_revision()
        if current == head:
            return
        if self.is_sqlite:
            self.upgrade()
            return
        raise TagscopeError(f"database schema is at {current or 'nothing'}, the code needs {head}: "
                            "run `tagscope db upgrade`")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config():  # -> alembic.config.Config
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    from migrations import head  # the scripts' revision lines: no Alembic import at every start

    return head()


_databases: dict[str, Database] = {}


def get_database(url: str, migrate: bool = True) -> Database:
    """One :class:`Database` per URL per process (workers and the web app share it)."""
    db = _databases.get(url)
    if db is None:
        db = _databases[url] = Database(url)
        if migrate:
            db.ensure_schema()
    return db


def table_names(db: Database) -> list[str]:
    return inspect(db.engine).get_table_names()


def collection_model_version(s: Session) -> ModelVersion | None:
    """The collection's current model version: the one activated last (``tagscope models use``,
    or a job that brought a new version to cover the collection), else the one most tagged
    images were tagged with."""
    active = s.scalars(select(ModelVersion).where(ModelVersion.active_since.is_not(None))
                       .order_by(ModelVersion.active_since.desc()).limit(1)).first()
    if active is not None:
        return active
    return s.scalars(select(ModelVersion).join(Image, Image.model_version_id == ModelVersion.id)
                     .where(Image.status == TAGGED).group_by(ModelVersion.id)
                     .order_by(func.count(Image.id).desc()).limit(1)).first()


def tagged_versions(s: Session) -> set[str]:
    """Version ids of every model that has tagged images or stored embeddings in the collection."""
    latest = set(s.scalars(select(ModelVersion.version).join(Image, Image.model_version_id == ModelVersion.id)
                           .where(Image.status == TAGGED).distinct()))
    stored = set(s.scalars(select(ModelVersion.version).where(
        select(Embedding.image_id).where(Embedding.model_version_id == ModelVersion.id).exists())))
    return latest | stored


def get_or_create_model_version(s: Session, version: str, spec: str, embed_dim: int) -> ModelVersion:
    mv = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if mv is None:
        mv = ModelVersion(version=version, spec=spec, embed_dim=embed_dim)
        s.add(mv)
        s.flush()
    return mv

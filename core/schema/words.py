"""Words in photos: the text lines OCR read in each photo (``photo_text``) and, per photo, what the
last reading was (``text_reads``): done, failed with a reason, and for which content of the file,
so that a changed file is read again. Migration 0012 creates them; migration 0013 the full-text
indexes over ``photo_text.folded`` (SQLite: the FTS5 table ``photo_text_fts`` kept in step by
triggers, and its vocabulary ``photo_text_fts_vocab``; PostgreSQL: a GIN index on
``to_tsvector('simple', folded)``, and a trigram index when ``pg_trgm`` could be created), which
no model here describes: Alembic leaves them alone (:func:`full_text_object`, ``migrations/env.py``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.schema.base import Base, utcnow

READ, FAILED_READ = "read", "failed"  # text_reads.state
READ_STATES = (READ, FAILED_READ)

# the full-text objects over photo_text.folded (migration 0013; indexer.search.words queries them)
FTS_TABLE = "photo_text_fts"  # SQLite FTS5, external content: photo_text's rows by id
FTS_VOCAB = "photo_text_fts_vocab"  # SQLite fts5vocab: each word stored once (typo-tolerant search)
TSV_INDEX = "ix_photo_text_fts"  # PostgreSQL GIN on to_tsvector('simple', folded)
TRGM_INDEX = "ix_photo_text_fts_trigrams"  # PostgreSQL GIN on folded gin_trgm_ops (with pg_trgm)


def full_text_object(name: str | None) -> bool:
    """Whether a table or index named ``name`` is one of the full-text objects above (the FTS5
    table's shadow tables ``photo_text_fts_data`` & co. included), which autogenerate ignores."""
    return bool(name) and (name == FTS_TABLE or name.startswith((FTS_TABLE + "_", TSV_INDEX)))


class PhotoText(Base):
    """One line of text OCR found in a photo (a video: in one of its frames): the text as read,
    ``folded`` for search (core.words.fold: lower case, accents removed), the recogniser's
    confidence, the language when known, and its box as four (x, y) corners in the upright photo's
    pixels."""

    __tablename__ = "photo_text"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(Integer)  # reading order within the photo
    text: Mapped[str] = mapped_column(Text)
    folded: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(16))
    box: Mapped[list] = mapped_column(JSON)
    frame_ms: Mapped[int | None] = mapped_column(Integer)  # a video's frame, milliseconds from its start


class TextRead(Base):
    """What OCR last did with a photo: ``read`` (``lines`` lines, possibly 0) or ``failed`` (``error``,
    one line), by which ``engine`` (its name, version and models), for the file's ``content_hash``
    at the time: a file whose hash changed is read again."""

    __tablename__ = "text_reads"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    engine: Mapped[str] = mapped_column(String(120))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

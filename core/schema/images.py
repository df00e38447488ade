"""The photo side of the schema: ``images`` (one row per registered file and its state), the
vocabulary (``labels``, a keyword tree), the model's ``tags`` on images and the rule that decides
which of them match (``label_cutoffs``)."""

from __future__ import annotations

import hashlib
import os
from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.schema.base import Base, utcnow

# Image states. A tagged image has scores from ``model_version_id``; a duplicate has the same
# bytes as ``duplicate_of`` and shares its tags; a failed one has an ``error`` reason; a missing
# one was registered under a folder that was tagged again and is no longer there (kept, so its
# tags come back if the file does).
PENDING, TAGGED, FAILED, DUPLICATE, MISSING = "pending", "tagged", "failed", "duplicate", "missing"
IMAGE_STATES = (PENDING, TAGGED, FAILED, DUPLICATE, MISSING)


def path_key(raw: bytes) -> str:
    """Fixed-length unique key of a file path (paths can be longer than an index allows)."""
    return hashlib.sha256(raw).hexdigest()


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


KEYWORD, GROUP = "keyword", "group"
LABEL_KINDS = (KEYWORD, GROUP)


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    source: Mapped[str] = mapped_column(String(32), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # pending: being scored (its tags hidden until the switch); active; removing (hidden at once).
    state: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    # The keyword tree (core.keyword_tree): a label with children is implied by them, never scored;
    # a ``group`` ([Name] in a Lightroom keyword file) only organises: never scored, never written.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default=KEYWORD, server_default=KEYWORD)
    # Other names of the keyword: they join its prompts and are written with it (a JSON list).
    synonyms: Mapped[list[str] | None] = mapped_column(JSON)
    # A person's cutoff on the collection model's score (``tagscope labels set``); None: calibrated.
    threshold: Mapped[float | None] = mapped_column(Float)


class Tag(Base):
    __tablename__ = "tags"
    __table_args__ = (Index("ix_tags_label_version_score", "label_id", "model_version_id", "score"),)

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)


class LabelCutoff(Base):
    """How one model version decides one label (core.decisions): a tag matches when its score is at
    least ``threshold`` (None: nothing matches), with confidence ``sigmoid(slope * (score -
    threshold))``. ``source`` says where it came from: ``bundle`` (fitted per label on the bundle's
    validation data), ``pooled`` (the bundle's rule for labels it was not fitted on) or
    ``collection`` (from the label's score distribution over ``images`` photos of the collection)."""

    __tablename__ = "label_cutoffs"

    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    threshold: Mapped[float | None] = mapped_column(Float)
    slope: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    images: Mapped[int] = mapped_column(Integer, default=0)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

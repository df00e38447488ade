"""What people said and kept: their verdicts on tags (``feedback``) and their named queries
(``saved_searches``, listed on the search page and run by ``tagscope saved run NAME``; what may
be stored, and the one-line errors, is :mod:`indexer.search.saved`'s business)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.schema.base import Base, utcnow


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


class SavedSearch(Base):
    """``filters`` holds only the names of :data:`indexer.search.filters.NAMES` that have a value;
    ``sort`` is one of :data:`indexer.search.filters.SORTS`."""

    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    query: Mapped[str] = mapped_column(Text)
    filters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sort: Mapped[str] = mapped_column(String(16), default="relevance")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

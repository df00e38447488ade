"""The ``saved_searches`` table: a named query with its filters and sort, listed on the search
page and run by ``tagscope saved run NAME``. Migration 0008 creates it; what may be stored (and
the one-line errors) is :mod:`indexer.search.saved`'s business."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


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

"""Tables of the index change log's readers (:mod:`indexer.log`): every copy of a version's vector
index (a search server's, a worker's, the command line's) and how far it has applied the log, and
how far the log has been trimmed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


class IndexCopy(Base):
    """One copy of a version's index: ``name`` is its machine and folder; ``position`` the last
    log entry it has applied; ``seen_at`` when it last said so (a copy silent for longer than the
    log's keep time no longer holds entries back)."""

    __tablename__ = "index_copies"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    vectors: Mapped[int] = mapped_column(Integer, default=0)
    role: Mapped[str] = mapped_column(String(16), default="")
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class IndexLogFloor(Base):
    """Log entries of a version up to ``floor`` were dropped: a copy behind it rebuilds from the store."""

    __tablename__ = "index_log_floor"

    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    floor: Mapped[int] = mapped_column(BigInteger, default=0)

"""The index change log's tables (:mod:`indexer.log`): its entries (``index_changes``), every copy
of a version's vector index (a search server's, a worker's, the command line's) and how far it has
applied the log, and how far the log has been trimmed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.schema.base import Base, utcnow


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

"""Model versions and what is stored under each: ``model_versions``, the images' ``embeddings``
(the source of truth the vector index is built from) and the ``label_embeddings``; and the three
questions every layer asks of them (which version is the collection's, which have tagged it, one
by its id)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.schema.base import Base, utcnow
from core.schema.images import TAGGED, Image


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


class Embedding(Base):
    """An image's embedding under one model version: the source of truth the vector index is
    built from (float16 bytes; ``patches`` [P, D] only for models with a local stream)."""

    __tablename__ = "embeddings"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True, index=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    patches: Mapped[bytes | None] = mapped_column(LargeBinary)


class LabelEmbedding(Base):
    """A label text's embedding under one model version (float32), computed once and reused by
    every run, process and worker (indexer.text_store)."""

    __tablename__ = "label_embeddings"

    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    text_key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the text
    text: Mapped[str] = mapped_column(Text)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


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

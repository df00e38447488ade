"""The tables of what files say about their shots: ``media`` (one row per decoded file) and
``video_frames`` (a video's sampled frames per model version). Migration 0007 creates them, 0010
adds the neighbourhood."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from core.schema.base import Base


class Media(Base):
    """What a file says about its shot, read when it is decoded (again when it changes): its kind
    (photo, raw, video), when it was taken (the camera's wall clock, its UTC offset when the file
    records one, and where the date came from: exif, video or file), camera, lens, GPS and the
    place there (offline GeoNames: the city people name, and the neighbourhood within it when the
    nearest place is a section of it), a video's duration, and which decoder made its pixels."""

    __tablename__ = "media"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), index=True)
    taken: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), index=True)
    taken_offset_min: Mapped[int | None] = mapped_column(Integer)
    taken_source: Mapped[str | None] = mapped_column(String(8))
    camera_make: Mapped[str | None] = mapped_column(String(120))
    camera_model: Mapped[str | None] = mapped_column(String(120))
    lens: Mapped[str | None] = mapped_column(String(120))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    country: Mapped[str | None] = mapped_column(String(80))
    country_code: Mapped[str | None] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(120))
    city: Mapped[str | None] = mapped_column(String(120))
    neighbourhood: Mapped[str | None] = mapped_column(String(120))
    duration_s: Mapped[float | None] = mapped_column(Float)
    decoder: Mapped[str | None] = mapped_column(String(16))


class VideoFrame(Base):
    """A video's sampled frames under one model version: the time of each and its embedding
    (float16 bytes). The video's own embedding (the index's) is their normalised mean; search
    scores a video by its best frame and names that frame's time."""

    __tablename__ = "video_frames"

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"),
                                                  primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    time_s: Mapped[float] = mapped_column(Float)
    vector: Mapped[bytes] = mapped_column(LargeBinary)

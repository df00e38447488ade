"""When, where and with what a shot was taken, as its file says: EXIF for photos and RAW files,
the container's tags for video, the file's mtime when neither has a date.

Times are kept as the camera's wall clock (``taken``, naive) plus the UTC offset when the file
records one (EXIF ``OffsetTimeOriginal``; a video's ISO 8601 creation date): "July 2023" means
the month on the photographer's clock, wherever the library is searched from. GPS positions at
0,0 (a receiver with no fix) or out of range are dropped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, DATETIME = 0x010F, 0x0110, 0x0132
DATETIME_ORIGINAL, DATETIME_DIGITIZED, OFFSET_ORIGINAL, OFFSET = 0x9003, 0x9004, 0x9011, 0x9010
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = 1, 2, 3, 4

EXIF, VIDEO, FILE = "exif", "video", "file"  # where ``taken`` came from
_MAX_TEXT = 120


@dataclass(frozen=True)
class Capture:
    """What a file says about its shot; every field None when it says nothing."""

    taken: datetime | None = None       # the camera's wall clock, naive
    offset_min: int | None = None       # its UTC offset in minutes, when recorded
    source: str | None = None           # exif | video | file
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    lat: float | None = None
    lon: float | None = None
    duration_s: float | None = None     # videos

    def taken_iso(self) -> str | None:
        """ISO 8601, with the offset when known (``2023-07-14T12:00:00+02:00``)."""
        if self.taken is None:
            return None
        if self.offset_min is None:
            return self.taken.isoformat()
        return self.taken.replace(tzinfo=timezone(timedelta(minutes=self.offset_min))).isoformat()

    def with_file_time(self, mtime: float) -> Capture:
        """This capture, dated by the file's mtime (in this machine's zone) when it has no date."""
        if self.taken is not None:
            return self
        try:
            local = datetime.fromtimestamp(mtime).astimezone()
        except (OverflowError, OSError, ValueError):
            return self
        offset = local.utcoffset()
        return replace(self, taken=local.replace(tzinfo=None, microsecond=0), source=FILE,
                       offset_min=None if offset is None else int(offset.total_seconds() // 60))


def text(value: Any) -> str | None:
    """An EXIF string, cleaned: NULs and padding gone, None when empty."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if value is None:
        return None
    cleaned = " ".join(str(value).replace("\x00", " ").split())[:_MAX_TEXT]
    return cleaned or None


def parse_exif_time(value: Any) -> datetime | None:
    """``2023:07:14 12:00:00`` (EXIF; also with ``-`` or a ``T``) -> a naive datetime, None for
    blanks and the zeros some cameras write."""
    raw = text(value)
    m = re.match(r"(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})", raw or "")
    if not m:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()))
    except ValueError:
        return None


def parse_offset(value: Any) -> int | None:
    """``+02:00`` / ``-0530`` / ``Z`` -> minutes east of UTC."""
    raw = text(value)
    if raw in ("Z", "z"):
        return 0
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", raw or "")
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    return (minutes if m.group(1) == "+" else -minutes) if minutes <= 14 * 60 else None


def _degrees(value: Any) -> float | None:
    try:
        parts = [float(v) for v in value] if isinstance(value, (tuple, list)) else [float(value)]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    parts = (parts + [0.0, 0.0])[:3]
    return parts[0] + parts[1] / 60 + parts[2] / 3600


def valid_position(lat: float | None, lon: float | None) -> tuple[float, float] | tuple[None, None]:
    """(lat, lon) when it is a real position: finite, in range, not the 0,0 of no fix."""
    if lat is None or lon is None or not (math.isfinite(lat) and math.isfinite(lon)):
        return None, None
    if abs(lat) > 90 or abs(lon) > 180 or (abs(lat) < 1e-6 and abs(lon) < 1e-6):
        return None, None
    return round(lat, 7), round(lon, 7)


def gps_position(lat: Any, lat_ref: Any, lon: Any, lon_ref: Any) -> tuple[float, float] | tuple[None, None]:
    """Degrees from EXIF GPS rationals (degrees, minutes, seconds) and their N/S, E/W refs."""
    la, lo = _degrees(lat), _degrees(lon)
    if la is None or lo is None:
        return None, None
    if (text(lat_ref) or "N").upper().startswith("S"):
        la = -la
    if (text(lon_ref) or "E").upper().startswith("W"):
        lo = -lo
    return valid_position(la, lo)


def from_exif(exif: Any) -> Capture:
    """A :class:`Capture` from a Pillow ``Image.Exif`` (JPEG, HEIC, AVIF, TIFF, DNG previews)."""
    try:
        sub = dict(exif.get_ifd(EXIF_IFD))
        gps = dict(exif.get_ifd(GPS_IFD))
    except Exception:  # noqa: BLE001 - a damaged sub-IFD must not cost the photo its other facts
        sub, gps = {}, {}
    taken = parse_exif_time(sub.get(DATETIME_ORIGINAL)) or parse_exif_time(sub.get(DATETIME_DIGITIZED))
    offset = parse_offset(sub.get(OFFSET_ORIGINAL)) if taken is not None else None
    if taken is None:  # IFD0's DateTime is when the file was last written by the camera or an editor
        taken = parse_exif_time(exif.get(DATETIME))
        offset = parse_offset(sub.get(OFFSET)) if taken is not None else None
    lat, lon = gps_position(gps.get(GPS_LAT), gps.get(GPS_LAT_REF), gps.get(GPS_LON), gps.get(GPS_LON_REF))
    lens = text(sub.get(LENS_MODEL))
    return Capture(taken=taken, offset_min=offset, source=EXIF if taken is not None else None,
                   make=text(exif.get(MAKE)), model=text(exif.get(MODEL)), lens=lens, lat=lat, lon=lon)


def from_exifread(tags: dict[str, Any]) -> Capture:
    """A :class:`Capture` from exifread's tags (RAW files whose EXIF Pillow cannot reach)."""
    def value(*names: str) -> Any:
        for name in names:
            if name in tags:
                v = tags[name]
                return getattr(v, "values", v)
        return None

    def printable(*names: str) -> str | None:
        for name in names:
            if name in tags:
                return text(str(tags[name]))
        return None

    taken = parse_exif_time(printable("EXIF DateTimeOriginal", "Image DateTimeOriginal", "EXIF DateTimeDigitized"))
    offset = parse_offset(printable("EXIF OffsetTimeOriginal")) if taken is not None else None
    if taken is None:
        taken = parse_exif_time(printable("Image DateTime"))
    lat, lon = gps_position(value("GPS GPSLatitude"), printable("GPS GPSLatitudeRef"),
                            value("GPS GPSLongitude"), printable("GPS GPSLongitudeRef"))
    return Capture(taken=taken, offset_min=offset, source=EXIF if taken is not None else None,
                   make=printable("Image Make"), model=printable("Image Model", "Image UniqueCameraModel"),
                   lens=printable("EXIF LensModel"), lat=lat, lon=lon)


def parse_iso6709(value: Any) -> tuple[float, float] | tuple[None, None]:
    """``+48.8566+002.3522/`` (ISO 6709, as QuickTime and MP4 store a video's place) -> (lat, lon)."""
    m = re.match(r"([+-]\d+(?:\.\d+)?)([+-]\d+(?:\.\d+)?)", text(value) or "")
    if not m:
        return None, None
    return valid_position(float(m.group(1)), float(m.group(2)))


def from_container(tags: dict[str, str], duration_s: float | None) -> Capture:
    """A :class:`Capture` from a video container's tags: Apple's local creation date (with its
    offset) first, else ``creation_time`` (UTC); make, model and ISO 6709 location."""
    tags = {k.lower(): v for k, v in tags.items()}
    taken, offset = None, None
    local = text(tags.get("com.apple.quicktime.creationdate"))
    m = re.match(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?", local or "")
    if m:
        taken, offset = parse_exif_time(m.group(1)), parse_offset(m.group(2))
    if taken is None:
        utc = text(tags.get("creation_time"))
        m = re.match(r"(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})", utc or "")
        if m and not m.group(1).startswith(("1904-01-01", "1970-01-01", "0000")):  # unset QuickTime epochs
            taken, offset = parse_exif_time(m.group(1)), 0
    lat, lon = parse_iso6709(tags.get("com.apple.quicktime.location.iso6709") or tags.get("location")
                             or tags.get("location-eng"))
    return Capture(taken=taken, offset_min=offset if taken is not None else None,
                   source=VIDEO if taken is not None else None,
                   make=text(tags.get("com.apple.quicktime.make") or tags.get("make")),
                   model=text(tags.get("com.apple.quicktime.model") or tags.get("model")),
                   lat=lat, lon=lon, duration_s=None if duration_s is None else round(duration_s, 3))

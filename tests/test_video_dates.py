"""A video whose container records only ``creation_time`` (UTC, no local-time tag) is dated in
UTC and says so: stored with offset 0, shown as ``+00:00`` in every view (show, the API, search
results in JSON and on the page), beside a photo whose EXIF gives its own clock and offset; a
real MP4 written by PyAV, tagged through the real CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
from sqlalchemy import select

from bench.library import Shot, picture, scene, write_still, write_video
from core.schema import Image, Media
from migrations import get_database

from .commands import run_cli


def _picture(seed: int):
    return picture(scene(seed), np.random.default_rng(seed), (160, 120))


def test_a_video_with_only_a_utc_creation_time_is_stored_and_shown_as_utc(home_env, tmp_path):
    home, env, url = home_env
    folder = tmp_path / "shots"
    # the same moment: 22:30 UTC in the video's container, 00:30 the next day on a clock in Paris
    write_video(folder / "clip.mp4", [_picture(1), _picture(2)], created="2023-07-14T22:30:00.000000Z")
    write_still(folder / "photo.jpg", _picture(3), Shot(taken=datetime(2023, 7, 15, 0, 30), offset="+02:00"))
    run_cli("tag", str(folder), home=home, **env)

    db = get_database(url)
    with db.session() as s:
        rows = {path.rsplit("/", 1)[1]: (taken, offset, source) for path, taken, offset, source in s.execute(
            select(Image.path, Media.taken, Media.taken_offset_min, Media.taken_source)
            .join(Media, Media.image_id == Image.id))}
    assert rows == {"clip.mp4": (datetime(2023, 7, 14, 22, 30), 0, "video"),
                    "photo.jpg": (datetime(2023, 7, 15, 0, 30), 120, "exif")}

    found = json.loads(run_cli("search", "red circle", "--json", "-k", "10", home=home, **env).stdout)["results"]
    taken = {hit["path"].rsplit("/", 1)[1]: hit["taken"] for hit in found}
    assert taken == {"clip.mp4": "2023-07-14T22:30:00+00:00", "photo.jpg": "2023-07-15T00:30:00+02:00"}
    clip = next(hit["image_id"] for hit in found if hit["path"].endswith("clip.mp4"))
    shown = json.loads(run_cli("show", str(clip), "--json", home=home, **env).stdout)
    assert (shown["taken_at"], shown["taken_at_source"]) == ("2023-07-14T22:30:00+00:00", "video")

    from core.settings import load_settings
    from web import create_app

    settings = load_settings(environ={k: v for k, v in env.items() if k == "TAGSCOPE_DATABASE_URL"}, home=str(home),
                             model="synthetic")
    client = create_app(settings, {"TESTING": True}).test_client()
    hits = client.get("/api/search?q=red+circle&k=10").get_json()["results"]
    assert {h["taken"] for h in hits} == {"2023-07-14T22:30:00+00:00", "2023-07-15T00:30:00+02:00"}
    page = client.get("/?q=red+circle").get_data(as_text=True)
    assert "2023-07-14 22:30 (UTC+00:00)" in page and "2023-07-15 00:30 (UTC+02:00)" in page
    assert client.get(f"/api/images/{clip}").get_json()["taken_at"] == "2023-07-14T22:30:00+00:00"

"""Bounds on every input (issue 30): near-duplicates do bounded work whatever the threshold, and a
threshold below the bound is refused before any; ``k`` / ``limit`` / ``top`` out of range are one
line in every listing, from the CLI, the API and the layers below (SQLite and PostgreSQL: ``-k -5``
was an unlimited listing on one and a traceback on the other); schedule intervals have an upper
bound (PostgreSQL keeps them in an INTEGER); the thumbnail cache is bounded (least recently used
out) and ``?t=`` keys only a video's thumbnails."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.errors import TagscopeError
from core.schema import Image
from core.settings import load_settings
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset

SAME_SITE = {"Origin": "http://127.0.0.1:5000", "Host": "127.0.0.1:5000"}  # a page of the server itself


def client_for(home: Path, env: dict[str, str], **settings):
    from web import create_app

    environ = {k: v for k, v in env.items() if k == "TAGSCOPE_DATABASE_URL"}
    app = create_app(load_settings(environ=environ, home=str(home), model="synthetic", **settings), {"TESTING": True})
    return app, app.test_client()


def one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# -- near-duplicates ---------------------------------------------------------------------------
def test_duplicate_pairs_are_bounded_by_each_photos_nearest_whatever_the_threshold():
    from indexer.search.near_groups import NEIGHBOURS, similar_pairs

    rng = np.random.default_rng(0)
    v = (1.0 + 0.02 * rng.normal(size=(600, 16))).astype(np.float32)  # all alike: every pair >= 0.5
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    i, j, s = similar_pairs(v, 0.5)
    assert 0 < len(i) <= len(v) * NEIGHBOURS  # a range search found all 179,700 pairs
    assert (i < j).all() and (s >= 0.5).all()
    from indexer.search.near_groups import crowded

    assert crowded(len(v), i, j) == len(v)  # each has more near-duplicates than were compared
    far = np.eye(16, dtype=np.float32)
    assert crowded(16, *similar_pairs(far, 0.5)[:2]) == 0


def test_a_duplicate_threshold_below_the_bound_is_refused_before_any_work(tagged_home):
    for args, env in ((["--threshold", "0.1"], {}), ([], {"TAGSCOPE_DUPLICATE_THRESHOLD": "0.2"})):
        line = one_line_error(run_cli("duplicates", *args, home=tagged_home, check=False, **env))
        assert "at least 0.5 and at most 1" in line, line
    _, client = client_for(tagged_home, {})
    refused = client.get("/api/duplicates?threshold=0.1")
    assert refused.status_code == 400 and refused.get_json()["status"] == 400
    assert "at least 0.5 and at most 1" in refused.get_json()["error"]
    loose = client.get("/api/duplicates?threshold=0.5&limit=1")
    assert loose.status_code == 200 and isinstance(loose.get_json()["crowded"], int)
    doc = client.get("/api/openapi.json").get_json()
    assert doc["components"]["schemas"]["Duplicates"]["properties"]["crowded"]["type"] == "integer"


# -- k, limit and top in every listing ---------------------------------------------------------
@pytest.fixture
def small_home(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    folder = photos_subset(synthetic_photos, tmp_path / "photos", 6)
    run_cli("tag", str(folder), home=home, **env)
    return home, env, url, folder


def test_counts_out_of_range_are_one_line_errors_in_every_listing(small_home, tmp_path):
    home, env, url, folder = small_home
    listing = ["search", "--folder", str(folder)]
    for args, message in ((listing + ["-k", "-5"], "k must be between 1 and 1000, got -5"),
                          (listing + ["-k", "0"], "k must be between 1 and 1000, got 0"),
                          (listing + ["--sort", "oldest", "-k", "5000"], "k must be between 1 and 1000, got 5000"),
                          (["search", "red circle", "-k", "-5"], "k must be between 1 and 1000, got -5"),
                          (["jobs", "--limit", "-5"], "limit must be between 1 and 1000, got -5"),
                          (["jobs", "--limit", "0"], "limit must be between 1 and 1000, got 0"),
                          (["export", "csv", str(tmp_path / "out.csv"), str(folder), "--top", "-1"],
                           "top must be between 0 and 1000, got -1")):
        assert one_line_error(run_cli(*args, home=home, check=False, **env)) == f"error: {message}", args
    assert not (tmp_path / "out.csv").exists()
    listed = json.loads(run_cli(*listing, "-k", "4", "--json", home=home, **env).stdout)["results"]
    assert len(listed) == 4  # in range: as asked
    assert len(json.loads(run_cli("jobs", "--limit", "1", "--json", home=home, **env).stdout)["jobs"]) == 1


def test_the_layers_below_and_the_api_check_the_same_bounds(small_home):
    from indexer.search.filters import Filters
    from tagger.jobs.control import list_jobs
    from web.context import get_searcher

    home, env, url, folder = small_home
    app, client = client_for(home, env)
    searcher = get_searcher(app)
    for k in (-5, 0, 1001):
        with pytest.raises(TagscopeError, match=f"k must be between 1 and 1000, got {k}"):
            searcher.browse(Filters.parse(str(folder)), k=k)
        with pytest.raises(TagscopeError, match=f"k must be between 1 and 1000, got {k}"):
            searcher.find(None, filters=Filters.parse(str(folder)), k=k)
    with pytest.raises(TagscopeError, match="limit must be between 1 and 1000, got -5"):
        list_jobs(get_database(url), -5)
    assert len(searcher.browse(Filters.parse(str(folder)), k=3).hits) == 3
    for path in (f"/api/search?folder={folder}&k=-5", "/api/search?q=red&k=1001", "/api/jobs?limit=-5",
                 "/api/jobs?limit=x", "/api/duplicates?limit=0", "/api/duplicates?offset=-1",
                 "/api/browse?by=month&limit=-5"):
        resp = client.get(path)
        body = resp.get_json()
        assert resp.status_code == 400 and body["status"] == 400 and "between" in body["error"], (path, body)


# -- schedules ---------------------------------------------------------------------------------
def test_schedule_intervals_have_an_upper_bound(home_env, tmp_path):
    from tagger.jobs.schedules import add_schedule
    from tagger.params import JobParams

    home, env, url = home_env
    env = {**env, "TAGSCOPE_BROKER_URL": "embedded"}
    photos = tmp_path / "photos"
    photos.mkdir()
    for every in ("99999999999w", "366d", str(2 ** 31)):
        proc = run_cli("schedule", "add", str(photos), "--every", every, home=home, check=False, **env)
        assert one_line_error(proc) == f"error: bad interval '{every}': at most 365d (a year), e.g. 30d"
    run_cli("schedule", "add", str(photos), "--every", "365d", home=home, **env)
    rows = json.loads(run_cli("schedule", "list", "--json", home=home, **env).stdout)["schedules"]
    assert [(r["every_s"], r["every"]) for r in rows] == [(365 * 86400, "365d")]
    _, client = client_for(home, env, broker_url="embedded")
    for every in (10 ** 12, "400d"):
        resp = client.post("/api/schedules", json={"folders": [str(photos)], "every": every}, headers=SAME_SITE)
        assert resp.status_code == 400 and "at most 365d" in resp.get_json()["error"], resp.get_json()
    with pytest.raises(TagscopeError, match="at most 365d"):
        add_schedule(get_database(url), [str(photos)], 10 ** 10, "synthetic", JobParams(20, None, 10 ** 8))
    assert len(client.get("/api/schedules").get_json()["schedules"]) == 1


# -- thumbnails --------------------------------------------------------------------------------
def test_the_file_cache_removes_the_least_recently_used_past_its_bound(tmp_path):
    from core.file_cache import FileCache

    cache = FileCache(tmp_path / "cache", 10_000)
    for n, key in enumerate("abc"):
        cache.put(key, bytes([n]) * 3000)
        os.utime(cache.path(key), (1000 + n, 1000 + n))  # used long ago, a first
    assert cache.get("a") == bytes([0]) * 3000  # used now: b is the least recently used
    cache.put("d", bytes(3000))  # 12,000 bytes > 10,000: down to at most 9,000
    assert sorted(p.stem for p in (tmp_path / "cache").iterdir()) == ["a", "c", "d"]
    assert cache.get("b") is None
    none = FileCache(tmp_path / "none", 0)
    none.put("a", b"x")
    assert none.get("a") is None and not (tmp_path / "none").exists()


@pytest.fixture
def media_home(home_env, synthetic_photos, tmp_path):
    from PIL import Image as PILImage

    from bench.library import write_video

    home, env, url = home_env
    folder = photos_subset(synthetic_photos, tmp_path / "photos", 3)
    write_video(folder / "clip.mp4", [PILImage.new("RGB", (64, 48), c) for c in ("red", "blue")], seconds_each=1.0)
    run_cli("tag", str(folder), home=home, **env)
    with get_database(url).session() as s:
        ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.path))}
    return home, env, ids


def test_thumbnails_stay_within_their_bound_and_t_keys_only_videos(media_home):
    home, env, ids = media_home
    thumbs = load_settings(environ={}, home=str(home)).thumbs_dir
    thumbs.mkdir(parents=True, exist_ok=True)
    stale = thumbs / ("0" * 40 + ".jpg")
    stale.write_bytes(bytes(2 << 20))  # thumbnails used long ago, maybe by another process
    os.utime(stale, (1, 1))
    _, client = client_for(home, env)
    photos, video = sorted(i for name, i in ids.items() if name != "clip.mp4"), ids["clip.mp4"]
    etags = {client.get(f"/thumb/{photos[0]}{query}").headers["ETag"] for query in ("", "?t=1", "?t=2.5", "?t=7")}
    assert len(etags) == 1  # one thumbnail of a photo, whatever t says
    frames = {client.get(f"/thumb/{video}?t={t}").headers["ETag"] for t in ("0.5", "1.5")}
    assert len(frames) == 2  # a video's frames are its own
    made = {p.name for p in thumbs.glob("*.jpg")} - {stale.name}
    assert made == {tag.strip('"') + ".jpg" for tag in etags | frames} and stale.exists()  # under 512 MB
    _, bounded = client_for(home, env, thumb_cache_mb=1)
    assert bounded.get(f"/thumb/{photos[1]}").status_code == 200  # past 1 MB: the least recently used go
    assert not stale.exists() and len(list(thumbs.glob("*.jpg"))) == 4
    assert sum(p.stat().st_size for p in thumbs.glob("*.jpg")) <= 1 << 20

"""A folder laid out the way a phone and a camera leave one, tagged end to end on SQLite and
PostgreSQL: every file an item or a stack member, none skipped; when, where and with what each
shot was taken in `show --json`, the API and the image page; each stack once in search; a video
hit names its best frame; bad files recorded as failed with reasons while the rest is tagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from bench.library import bad_files, phone_library, scene, scene_labels
from core.schema import Image
from mkt.synthetic.scenes import label_families

from .commands import run_cli


@pytest.fixture
def tagged_library(home_env, tmp_path):
    home, env, url = home_env
    photos = tmp_path / "photos"
    lib = phone_library(photos)
    bad = bad_files(photos)
    before = sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in photos.rglob("*"))
    out = run_cli("tag", str(photos), home=home, **env)
    assert sorted((p, p.stat().st_size, p.stat().st_mtime_ns) for p in photos.rglob("*")) == before, \
        "nothing is written next to the photos, nothing there changes"
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = {Path(path).relative_to(photos.resolve()).as_posix(): (image_id, status, error)
                for image_id, path, status, error in conn.execute(
                    select(Image.id, Image.path, Image.status, Image.error))}
    engine.dispose()
    return home, env, photos, lib, bad, rows, out


def _show(home, env, image_id):
    return json.loads(run_cli("show", str(image_id), "--json", home=home, **env).stdout)


def test_every_file_is_registered_and_the_bad_ones_fail_with_reasons(tagged_library):
    home, env, photos, lib, bad, rows, out = tagged_library
    assert set(rows) == set(lib.labels) | set(bad), "every photo, RAW and video is registered"
    assert "skipped" not in out.stderr + out.stdout
    for name in lib.labels:
        assert rows[name][1] == "tagged", (name, rows[name])
    reasons = {"bad/truncated.heic": "truncated or corrupt HEIC/HEIF file",
               "bad/corrupt.dng": "not a RAW file LibRaw can read",
               "bad/noframes.mp4": "not a video FFmpeg can read"}
    for name, fate in bad.items():
        assert rows[name][1] == fate, (name, rows[name])
        if fate == "failed":
            assert rows[name][2].startswith(reasons[name]) and "\n" not in rows[name][2]
    hour = _show(home, env, rows["bad/hour.mp4"][0])
    assert hour["media"] == "video" and hour["duration_s"] == pytest.approx(3600, abs=1) and hour["tags"]
    assert _show(home, env, rows["bad/eightk.mp4"][0])["width"] == 7680


def test_show_gives_the_date_offset_camera_gps_and_place_the_files_say(tagged_library):
    home, env, _, _, _, rows, _ = tagged_library
    heic = _show(home, env, rows["DCIM/IMG_0001.HEIC"][0])
    assert (heic["media"], heic["taken_at"], heic["taken_at_source"]) == ("photo", "2023-07-14T12:00:05+02:00", "exif")
    assert heic["camera"] == {"make": "Apple", "model": "iPhone 14 Pro",
                              "lens": "iPhone 14 Pro back triple camera 6.86mm f/1.78"}
    assert heic["gps"] == {"lat": pytest.approx(48.8566, abs=1e-4), "lon": pytest.approx(2.3522, abs=1e-4)}
    assert heic["place"] == {"country": "France", "region": "Île-de-France", "city": "Paris", "neighbourhood": None}
    assert heic["format"] == "HEIF" and heic["stack"] == [] and heic["duration_s"] is None
    turned = _show(home, env, rows["DCIM/IMG_0002.HEIC"][0])
    assert turned["taken_at"] == "2023-07-15T18:30:00-04:00" and (turned["width"], turned["height"]) == (320, 240)
    assert turned["place"]["city"] == "New York City" and turned["place"]["country"] == "United States"
    jpeg = _show(home, env, rows["camera/IMG_1001.JPG"][0])
    assert jpeg["taken_at"] == "2023-08-01T09:15:00+10:00" and jpeg["place"]["city"] == "Sydney"
    assert jpeg["camera"]["model"] == "Canon EOS R5" and jpeg["stack"] == [str(Path(jpeg["path"]).with_suffix(".DNG"))]
    raw = _show(home, env, rows["camera/DSC_2002.DNG"][0])
    assert (raw["media"], raw["taken_at"], raw["taken_at_source"]) == ("raw", "2022-12-24T20:00:00", "exif")
    assert raw["camera"]["make"] == "Nikon" and raw["gps"] is None and raw["place"] is None
    video = _show(home, env, rows["DCIM/MVI_0003.MP4"][0])
    assert (video["media"], video["taken_at"], video["taken_at_source"]) == \
        ("video", "2023-07-14T10:00:00+00:00", "video")
    assert video["duration_s"] == pytest.approx(6.0, abs=0.1) and video["place"]["city"] == "Paris"
    live = _show(home, env, rows["DCIM/IMG_0004.HEIC"][0])
    assert live["stack"] == [str(Path(live["path"]).with_suffix(".MOV"))] and live["stack_face"] == live["image_id"]
    mov = _show(home, env, rows["DCIM/IMG_0004.MOV"][0])
    assert mov["taken_at"] == "2023-07-16T11:00:00+02:00" and mov["stack_face"] == live["image_id"]
    scan = _show(home, env, rows["scans/scan_001.png"][0])
    assert scan["taken_at_source"] == "file" and scan["camera"] is None and scan["place"] is None


def test_search_shows_each_stack_once_and_a_video_hit_names_its_best_frame(tagged_library):
    home, env, photos, lib, _, rows, _ = tagged_library
    first, second = scene(1), scene(6)  # the MP4 shows the first picture, then the second from 2 s to 4 s
    only_second = [label for family in ("background", "colour", "shape") for label in label_families()[family]
                   if label in scene_labels(second) and label not in scene_labels(first)]
    assert only_second, "the fixture's two pictures differ"
    for query in (only_second[0], "a photo"):
        hits = json.loads(run_cli("search", query, "-k", "100", "--json", home=home, **env).stdout)["results"]
        paths = [Path(h["path"]).relative_to(photos.resolve()).as_posix() for h in hits]
        assert len(paths) == len(set(paths))
        for stack in lib.stacks:
            shown = [p for p in paths if p in stack]
            assert shown == [stack[0]], (query, stack, shown)  # the still, once
            hit = hits[paths.index(stack[0])]
            assert [Path(p).name for p in hit["stack"]] == [Path(stack[1]).name]
        video = hits[paths.index("DCIM/MVI_0003.MP4")]
        if query == only_second[0]:
            assert 2.0 <= video["frame_s"] <= 4.0, video
        assert all(h["frame_s"] is None for h in hits if not h["path"].lower().endswith((".mp4", ".mov")))
    text = run_cli("search", only_second[0], "-k", "100", home=home, **env).stdout
    lines = text.splitlines()
    assert any("MVI_0003.MP4  (at 0:0" in line for line in lines)
    assert [line.split()[-1] for line in lines if "IMG_1001" in line] == [f"{photos.resolve()}/camera/IMG_1001.DNG)"]


def test_the_image_page_and_api_show_date_place_and_camera(tagged_library):
    home, env, _, _, _, rows, _ = tagged_library
    from core.settings import load_settings
    from web import create_app

    settings = load_settings(environ=env, home=str(home))
    client = create_app(settings).test_client()
    image_id = rows["DCIM/IMG_0001.HEIC"][0]
    page = client.get(f"/image/{image_id}").get_data(as_text=True)
    assert "2023-07-14 12:00 (UTC+02:00)" in page and "Paris, Île-de-France, France" in page
    assert "Apple iPhone 14 Pro" in page
    api = client.get(f"/api/images/{image_id}").get_json()
    assert api["taken_at"] == "2023-07-14T12:00:05+02:00" and api["place"]["city"] == "Paris"
    for name in ("DCIM/IMG_0001.HEIC", "camera/DSC_2002.DNG", "DCIM/MVI_0003.MP4"):
        for url in (f"/thumb/{rows[name][0]}", f"/image/{rows[name][0]}/full", f"/thumb/{rows[name][0]}?t=3"):
            resp = client.get(url)
            assert resp.status_code == 200 and resp.mimetype == "image/jpeg" and resp.data[:2] == b"\xff\xd8", url


def test_a_process_that_ran_libraw_still_tags_raw_files_with_decode_workers(tmp_path):
    """LibRaw's OpenMP pool does not survive a fork: a process that decoded a RAW itself (a
    server's thumbnail) starts its decode workers from a fork server, and the job finishes."""
    import numpy as np

    from bench.library import Shot, picture, write_dng
    from core.media import raw
    from core.media.read import read_media

    photos = tmp_path / "photos"
    for i in range(3):
        write_dng(photos / f"DSC_{i}.DNG", picture(scene(i), np.random.default_rng(i)), Shot(), preview=None)
    assert read_media(photos / "DSC_0.DNG", draft_size=64).decoder == "demosaic"
    assert not raw.fork_is_safe()
    out = run_cli("tag", str(photos), home=tmp_path / "home", TAGSCOPE_MODEL="synthetic", TAGSCOPE_LOADER_WORKERS="2")
    assert "3 tagged, 0 failed" in out.stdout + out.stderr


def test_a_library_tagged_before_the_facts_were_stored_catches_up_without_tagging_again(tmp_path):
    """Migration 0007 leaves earlier photos without a media row: the next scan (a nightly job)
    reads their headers and containers, and tags nothing again."""
    from sqlalchemy import delete, func

    from core.schema import Media
    from migrations import get_database

    photos, home = tmp_path / "photos", tmp_path / "home"
    phone_library(photos)
    run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic")
    db = get_database(f"sqlite:///{home.resolve()}/tagscope.sqlite")
    with db.session() as s:
        tagged_at = dict(s.execute(select(Image.id, Image.tagged_at)).all())
        s.execute(delete(Media))
    out = run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic")
    assert f"read when, where and with what of {len(tagged_at)} files tagged before" in out.stdout + out.stderr
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Media)) == len(tagged_at)
        assert dict(s.execute(select(Image.id, Image.tagged_at)).all()) == tagged_at  # nothing tagged again
        heic = s.scalar(select(Image.id).where(Image.path.endswith("IMG_0001.HEIC")))
    record = _show(home, {"TAGSCOPE_MODEL": "synthetic"}, heic)
    assert record["taken_at"] == "2023-07-14T12:00:05+02:00" and record["place"]["city"] == "Paris"
    assert "read when" not in run_cli("tag", str(photos), home=home, TAGSCOPE_MODEL="synthetic").stderr


def test_evidence_maps_of_heic_raw_and_video_are_drawn_over_a_jpeg_of_the_file(tmp_path):
    """A two-stream model keeps patch features for every kind of file; the evidence map's PNG is
    drawn over the file decoded by core.media (HEIC, a RAW's demosaic, a video's frame)."""
    import io

    import numpy as np
    from PIL import Image as PILImage

    from bench.library import Shot, picture, write_dng, write_still, write_video
    from core.settings import load_settings
    from web import create_app

    from .bundles import two_stream_bundle

    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    write_still(photos / "a.heic", picture(scene(1), rng), Shot())
    write_dng(photos / "b.dng", picture(scene(2), rng), Shot(), preview=None)
    write_video(photos / "c.mp4", [picture(scene(3), rng), picture(scene(4), rng)], seconds_each=2.0)
    spec = f"mkt:{two_stream_bundle(tmp_path / 'two-stream.pt')}"
    run_cli("tag", str(photos), "--model", spec, home=tmp_path / "home")
    client = create_app(load_settings(environ={}, home=str(tmp_path / "home"))).test_client()
    for image_id in (1, 2, 3):
        label = client.get(f"/api/images/{image_id}").get_json()["tags"][0]["label"]
        found = client.get(f"/api/images/{image_id}/evidence", query_string={"label": label}).get_json()
        assert found["available"] and len(found["scores"]) == found["grid"][0] * found["grid"][1]
        png = client.get(f"/image/{image_id}/evidence.png", query_string={"label": label})
        assert png.status_code == 200 and PILImage.open(io.BytesIO(png.data)).format == "PNG"


def test_filters_by_when_where_what_camera_and_kind_combine_with_text(tagged_library):
    """taken (a year, month, day or range, on the camera's clock), place, camera and media, alone
    and with a text, in the CLI and the API; malformed values get one line naming the fix."""
    home, env, photos, lib, _, rows, _ = tagged_library

    def found(*options, text="a photo"):
        hits = json.loads(run_cli("search", text, "-k", "100", "--json", *options, home=home, **env).stdout)
        return {Path(h["path"]).relative_to(photos.resolve()).as_posix() for h in hits["results"]}

    july_14 = {"DCIM/IMG_0001.HEIC", "DCIM/MVI_0003.MP4"}
    assert found("--taken", "2023-07-14") == july_14
    # 18:30 at -04:00 on the 15th is the 15th on the camera's clock (22:30 UTC): in the range, not the 16th
    assert found("--taken", "2023-07-15..2023-07-16") == {"DCIM/IMG_0002.HEIC", "DCIM/IMG_0004.HEIC"}
    assert found("--taken", "2022") == {"camera/DSC_2002.DNG"}
    assert found("--place", "paris") == {"DCIM/IMG_0001.HEIC", "DCIM/MVI_0003.MP4", "DCIM/IMG_0004.HEIC"}
    assert found("--place", "Australia") == {"camera/IMG_1001.JPG"}  # its DNG has no GPS: the stack's face
    assert found("--camera", "canon") == {"camera/IMG_1001.JPG"}  # the DNG shares the camera: one stack
    assert found("--camera", "iphone", "--taken", "2023-07-15") == {"DCIM/IMG_0002.HEIC"}
    assert found("--media", "raw") == {"camera/DSC_2002.DNG", "camera/IMG_1001.JPG"}
    assert "bad/hour.mp4" in found("--media", "video") and not found("--media", "video") & {"scans/scan_001.png"}
    # a stack passes when one of its files does, and is shown as its still (the Live Photo's video is in Paris)
    assert found("--place", "Paris", "--media", "video", text=lib.labels["DCIM/MVI_0003.MP4"][0]) == \
        {"DCIM/MVI_0003.MP4", "DCIM/IMG_0004.HEIC"}
    for option, value, fix in (("--taken", "July", "taken must be a year, month or day"),
                               ("--taken", "2023-02-30", "not a date on the calendar"),
                               ("--taken", "2023-08..2023-07", "write the earlier date first")):
        out = run_cli("search", "a photo", option, value, home=home, check=False, **env)
        assert out.returncode != 0 and fix in out.stderr and len(out.stderr.strip().splitlines()) == 1
    from core.settings import load_settings
    from web import create_app

    client = create_app(load_settings(environ=env, home=str(home))).test_client()
    api = client.get("/api/search", query_string={"q": "a photo", "k": 100, "place": "sydney"}).get_json()
    assert api["filters"]["place"] == "sydney" and len(api["results"]) == 1
    page = client.get("/", query_string={"q": "a photo", "place": "Paris", "media": "video"}).get_data(as_text=True)
    assert page.count('class="result') == 2 and 'value="Paris"' in page and '<option value="video" selected>' in page
    # near-duplicates come back once: the HEIC, its 512 px copy and that copy resized (cosine 1.000)
    copies = {rows[name][0] for name in ("DCIM/IMG_0001.HEIC", "copies/original.jpg", "copies/resized.jpg")}
    hits = client.get("/api/search", query_string={"q": "a photo", "k": 100}).get_json()["results"]
    shown = [h for h in hits if h["image_id"] in copies]
    assert len(shown) == 1 and {shown[0]["image_id"], *shown[0]["similar"]} == copies
    assert rows["copies/cropped.jpg"][0] in {h["image_id"] for h in hits}  # a crop is not folded (these models)
    page = client.get("/", query_string={"q": "a photo"}).get_data(as_text=True)
    assert "+2 similar" in page and f'href="/duplicates/{shown[0]["image_id"]}"' in page
    bad = client.get("/api/search", query_string={"q": "a photo", "media": "film"})
    assert bad.status_code == 400 and "media must be one of photo, raw, video" in bad.get_json()["error"]

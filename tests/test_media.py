"""Real libraries' files, one at a time: HEIC, AVIF, RAW (preview and demosaic) and video decode
upright and within bounds; what each says about its shot (EXIF, the container's tags) is read in
the same pass; places come from GPS offline; bad files become one-line reasons."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from bench.library import PARIS, Shot, picture, scene, write_dng, write_still, write_video
from core.media import kinds
from core.media.errors import ImageDecodeError
from core.media.metadata import Capture, parse_exif_time, parse_iso6709, parse_offset, valid_position
from core.media.places import places
from core.media.read import read_media, thumbnail
from core.media.stacks import stack_key
from core.media.video import MAX_FRAMES, sample_times

SHOT = Shot(taken=datetime(2023, 7, 14, 12, 0, 5), offset="+02:00", make="Apple", model="iPhone 14 Pro",
            lens="back camera", lat=PARIS[0], lon=PARIS[1])


def _picture(size=(320, 240), seed=1):
    return picture(scene(seed), np.random.default_rng(seed), size)


def _half_red(size=(320, 240)):
    """Red on the left half, blue on the right: shows which way an image was turned."""
    arr = np.zeros((size[1], size[0], 3), np.uint8)
    arr[:, : size[0] // 2] = (255, 0, 0)
    arr[:, size[0] // 2:] = (0, 0, 255)
    return Image.fromarray(arr)


def test_heic_decodes_upright_with_its_exif_date_offset_camera_and_gps(tmp_path):
    path = write_still(tmp_path / "IMG_0001.HEIC", _picture(), SHOT)
    media = read_media(path, draft_size=64)
    assert media.kind == "photo" and media.info.format == "HEIF" and media.image.size == (320, 240)
    c = media.capture
    assert (c.taken, c.offset_min, c.source) == (datetime(2023, 7, 14, 12, 0, 5), 120, "exif")
    assert (c.make, c.model, c.lens) == ("Apple", "iPhone 14 Pro", "back camera")
    assert c.lat == pytest.approx(PARIS[0], abs=1e-4) and c.lon == pytest.approx(PARIS[1], abs=1e-4)
    assert c.taken_iso() == "2023-07-14T12:00:05+02:00"


@pytest.mark.parametrize("suffix", [".heic", ".jpg", ".avif"])
def test_the_orientation_tag_turns_the_photo_upright(tmp_path, suffix):
    # stored with its top to the left (as a phone held upright writes it), tagged "rotate 90 CW"
    stored = _half_red().transpose(Image.Transpose.ROTATE_90)  # 240 x 320, red at the bottom
    path = write_still(tmp_path / f"turned{suffix}", stored, Shot(orientation=6))
    media = read_media(path)
    assert media.image.size == (320, 240) and (media.info.width, media.info.height) == (320, 240)
    left, right = media.image.getpixel((40, 120)), media.image.getpixel((280, 120))
    assert left[0] > 200 > left[2] and right[2] > 200 > right[0], (left, right)


def test_a_raw_uses_its_preview_when_large_enough_else_a_half_size_demosaic(tmp_path):
    image = _half_red((384, 256))
    path = write_dng(tmp_path / "IMG_1001.DNG", image, Shot(taken=datetime(2023, 8, 1, 9, 15), make="Canon",
                                                              model="Canon EOS R5"), preview=384)
    fast = read_media(path, draft_size=224)
    assert (fast.kind, fast.decoder, fast.image.size) == ("raw", "preview", (384, 256))
    slow = read_media(path, draft_size=300)  # the preview's short side (256) is below what is needed
    assert (slow.decoder, slow.image.size) == ("demosaic", (192, 128))
    for media in (fast, slow):
        w, h = media.image.size
        assert media.image.getpixel((w // 4, h // 2))[0] > 150 > media.image.getpixel((w // 4, h // 2))[2]
        assert (media.info.width, media.info.height) == (384, 256)
        assert (media.capture.taken, media.capture.make, media.capture.model) == \
            (datetime(2023, 8, 1, 9, 15), "Canon", "Canon EOS R5")
    none = write_dng(tmp_path / "DSC_2002.DNG", image, Shot(), preview=None)
    assert read_media(none, draft_size=64).decoder == "demosaic"


def test_a_raw_turned_by_the_camera_is_shown_upright_both_ways(tmp_path):
    stored = _half_red((384, 256)).transpose(Image.Transpose.ROTATE_90)  # 256 x 384
    path = write_dng(tmp_path / "turned.DNG", stored, Shot(orientation=6), preview=384)
    for need in (100, 300):
        media = read_media(path, draft_size=need)
        w, h = media.image.size
        assert w > h and (media.info.width, media.info.height) == (384, 256), (media.decoder, media.image.size)
        assert media.image.getpixel((w // 4, h // 2))[0] > 150, media.decoder


def test_a_video_is_its_sampled_frames_with_the_containers_date_place_and_duration(tmp_path):
    frames = [_picture(seed=s) for s in (1, 2, 3)]
    path = write_video(tmp_path / "MVI_0003.MP4", frames, seconds_each=2.0, created="2023-07-14T10:00:00.000000Z",
                       location="+48.8566+002.3522/")
    media = read_media(path, draft_size=64)
    assert media.kind == "video" and media.info.frames == 3
    assert [t for t, _ in media.frames] == pytest.approx([1.0, 3.0, 5.0], abs=0.11)
    c = media.capture
    assert (c.taken, c.offset_min, c.source, c.duration_s) == (datetime(2023, 7, 14, 10, 0), 0, "video", 6.0)
    assert (c.lat, c.lon) == (48.8566, 2.3522)
    # each sampled frame is the picture shown at that time
    for (_, got), want in zip(media.frames, frames):
        diff = np.abs(np.asarray(got, np.int16) - np.asarray(want, np.int16)).mean()
        assert diff < 12, diff


def test_a_live_photos_video_carries_its_local_date_and_offset(tmp_path):
    path = write_video(tmp_path / "IMG_0004.MOV", [_picture()], seconds_each=2.0,
                       apple_date="2023-07-16T11:00:00+0200", created="2023-07-16T09:00:00.000000Z")
    c = read_media(path).capture
    assert c.taken_iso() == "2023-07-16T11:00:00+02:00" and c.source == "video"


def test_hours_of_video_and_8k_frames_stay_within_bounds(tmp_path):
    rng = np.random.default_rng(0)
    hour = write_video(tmp_path / "hour.mp4", [picture(scene(i), rng, (64, 64)) for i in range(60)],
                       fps=Fraction(1, 60), seconds_each=60.0)
    media = read_media(hour, draft_size=64)
    assert len(media.frames) == MAX_FRAMES and media.capture.duration_s == pytest.approx(3600, abs=1)
    big = write_video(tmp_path / "8k.mp4", [_picture((7680, 4320))], fps=2, seconds_each=1.0)
    media = read_media(big, draft_size=64)
    assert (media.info.width, media.info.height) == (7680, 4320) and max(media.image.size) <= 1024
    assert sample_times(36000.0) == [(i + 0.5) * 36000 / 16 for i in range(16)]  # ten hours: still 16 frames
    assert sample_times(3.0) == [0.75, 2.25] and sample_times(None) == [0.0]


def test_files_without_a_date_are_dated_by_the_file(tmp_path):
    path = tmp_path / "scan.png"
    _picture().save(path)
    c = read_media(path, mtime=datetime(2020, 5, 6, 7, 8, 9).timestamp()).capture
    assert c.source == "file" and c.taken == datetime(2020, 5, 6, 7, 8, 9) and c.offset_min is not None


@pytest.mark.parametrize("name, data, reason", [
    ("cut.heic", None, "truncated or corrupt HEIC/HEIF file"),
    ("corrupt.dng", b"II*\x00" + bytes(range(256)) * 16, "not a RAW file LibRaw can read"),
    ("garbage.cr2", b"not a raw file at all" * 100, "not a RAW file LibRaw can read"),
    ("noframes.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(200), "not a video FFmpeg can read"),
    ("empty.mov", b"", "not a video FFmpeg can read"),
])
def test_bad_files_become_one_line_reasons(tmp_path, name, data, reason):
    path = tmp_path / name
    if data is None:
        whole = write_still(tmp_path / "whole.heic", _picture(), SHOT).read_bytes()
        data = whole[: len(whole) // 2]
    path.write_bytes(data)
    with pytest.raises(ImageDecodeError) as err:
        read_media(path)
    assert err.value.reason.startswith(reason) and "\n" not in err.value.reason
    with pytest.raises(ImageDecodeError):
        thumbnail(path, 64)


def test_an_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "voice.m4v"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for _ in range(8):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(ImageDecodeError, match="no video stream"):
        read_media(path)


def test_a_missing_library_names_the_package_to_install(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rawpy" else real(name, *a))
    path = write_dng(tmp_path / "x.dng", _picture(), Shot())
    with pytest.raises(ImageDecodeError, match=r"^cannot read RAW files: the rawpy package is not installed "
                                               r"\(pip install rawpy\)$"):
        read_media(path)


def test_thumbnails_of_every_kind_are_jpegs(tmp_path):
    import io

    files = [write_still(tmp_path / "a.heic", _picture(), SHOT), write_dng(tmp_path / "b.dng", _picture(), Shot()),
             write_video(tmp_path / "c.mp4", [_picture(seed=s) for s in (1, 2)], seconds_each=1.0)]
    for path in files:
        img = Image.open(io.BytesIO(thumbnail(path, 128)))
        assert img.format == "JPEG" and max(img.size) == 128
    at_1_5 = Image.open(io.BytesIO(thumbnail(files[2], 320, at_s=1.5)))
    want = _picture(seed=2)
    assert np.abs(np.asarray(at_1_5, np.int16) - np.asarray(want, np.int16)).mean() < 12


def test_exif_values_that_say_nothing_are_dropped():
    assert parse_exif_time("0000:00:00 00:00:00") is None and parse_exif_time("    ") is None
    assert parse_exif_time("2023:07:14 12:00:05") == datetime(2023, 7, 14, 12, 0, 5)
    assert [parse_offset(v) for v in ("+02:00", "-0530", "Z", "+25:00", "junk")] == [120, -330, 0, None, None]
    assert valid_position(0.0, 0.0) == (None, None) and valid_position(91.0, 2.0) == (None, None)
    assert valid_position(48.8566, 200.0) == (None, None) and valid_position(float("nan"), 1.0) == (None, None)
    assert parse_iso6709("-33.8688+151.2093+012.000/") == (-33.8688, 151.2093)
    assert parse_iso6709("+00.0000+000.0000/") == (None, None)
    assert Capture().taken_iso() is None


def test_places_come_from_gps_offline_and_nowhere_is_no_place():
    paris, sydney, ocean = places([PARIS, (-33.8688, 151.2093), (30.0, -40.0)])
    assert (paris.city, paris.region, paris.country, paris.country_code) == ("Paris", "Île-de-France", "France", "FR")
    assert (sydney.city, sydney.country) == ("Sydney", "Australia")
    assert ocean is None


def test_kinds_and_stacks():
    assert [kinds.media_kind(p) for p in ("a.HEIC", "b.cr3", "c.MOV", "d.jpg", "e.avif", "f.txt")] == \
        ["photo", "raw", "video", "photo", "photo", None]
    assert stack_key("/p/DCIM/IMG_0001.HEIC") == stack_key("/p/DCIM/IMG_0001.mov")
    assert stack_key("/p/DCIM/IMG_0001.HEIC") != stack_key("/p/other/IMG_0001.MOV")
    assert stack_key("/p/IMG_0001.JPG") != stack_key("/p/IMG_0002.JPG")

"""Writers for the files a phone and a camera leave in a library, with synthetic-world pictures in
them: HEIC and JPEG with EXIF date, offset, camera, lens and GPS; DNG (with or without its JPEG
preview); MP4 and MOV with a creation date and an ISO 6709 place; Live Photos (HEIC + MOV of one
name). Tests and benchmarks build their folders with these (pillow-heif writes HEIC, PyAV writes
video, tifffile writes DNG; tifffile is a test dependency).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image

from mkt.synthetic.render import render
from mkt.synthetic.scenes import Scene, sample_scene

EXIF_IFD, GPS_IFD = 0x8769, 0x8825


@dataclass(frozen=True)
class Shot:
    """What a fixture file says about its shot (all optional)."""

    taken: datetime | None = None
    offset: str | None = None            # "+02:00"
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    lat: float | None = None
    lon: float | None = None
    orientation: int = 1


def scene_labels(scene: Scene) -> list[str]:
    """The world's labels that are true of ``scene``."""
    return sorted(scene.labels())


def picture(scene: Scene, rng: np.random.Generator, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A scene rendered and scaled up to a photo-like size (nearest: the shapes stay crisp)."""
    return render(scene, rng).resize(size, Image.Resampling.NEAREST)


def exif_bytes(shot: Shot) -> bytes:
    """EXIF as a camera writes it: IFD0 (make, model, orientation), the Exif IFD (date, offset,
    lens) and the GPS IFD (degrees, minutes, seconds with N/S, E/W)."""
    exif = Image.Exif()
    if shot.make:
        exif[0x010F] = shot.make
    if shot.model:
        exif[0x0110] = shot.model
    exif[0x0112] = shot.orientation
    sub = exif.get_ifd(EXIF_IFD)
    if shot.taken is not None:
        sub[0x9003] = shot.taken.strftime("%Y:%m:%d %H:%M:%S")
    if shot.offset:
        sub[0x9011] = shot.offset
    if shot.lens:
        sub[0xA434] = shot.lens
    if shot.lat is not None and shot.lon is not None:
        gps = exif.get_ifd(GPS_IFD)
        gps[1], gps[2] = ("N" if shot.lat >= 0 else "S"), _dms(abs(shot.lat))
        gps[3], gps[4] = ("E" if shot.lon >= 0 else "W"), _dms(abs(shot.lon))
    return exif.tobytes()


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4)


def write_still(path: Path, image: Image.Image, shot: Shot = Shot(), quality: int = 90,
                heic_thumbnail: int | None = 320, heic_preset: str | None = None) -> Path:
    """A JPEG, HEIC or AVIF (by the path's extension) with EXIF. HEIC needs pillow-heif; it gets
    an embedded thumbnail of ``heic_thumbnail`` px a side as phones write (320 x 240), and
    ``heic_preset`` is x265's (``ultrafast`` for benchmark fixtures: 5x faster to write)."""
    extra: dict = {}
    if path.suffix.lower() in (".heic", ".heif"):
        import pillow_heif

        pillow_heif.register_heif_opener()
        extra = {"thumbnails": [heic_thumbnail] if heic_thumbnail else []}
        if heic_preset:
            extra["enc_params"] = {"preset": heic_preset}
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=quality, exif=exif_bytes(shot), **extra)
    return path


def _bayer(image: Image.Image) -> np.ndarray:
    """An RGGB mosaic (12-bit) of ``image``: what a sensor behind a Bayer filter records."""
    rgb = np.asarray(image.convert("RGB"), np.uint16) * 16
    h, w = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
    out = np.zeros((h, w), np.uint16)
    out[0::2, 0::2] = rgb[0:h:2, 0:w:2, 0]
    out[0::2, 1::2] = rgb[0:h:2, 1:w:2, 1]
    out[1::2, 0::2] = rgb[1:h:2, 0:w:2, 1]
    out[1::2, 1::2] = rgb[1:h:2, 1:w:2, 2]
    return out


def write_dng(path: Path, image: Image.Image, shot: Shot = Shot(), preview: int | None = 256) -> Path:
    """A DNG whose raw data is ``image`` seen through an RGGB Bayer filter, with the camera's
    JPEG preview (longest side ``preview``; None: no preview), make, model, orientation and
    DateTimeOriginal."""
    import tifffile

    raw = _bayer(image)
    tags = [(50706, "B", 4, (1, 4, 0, 0), True), (50707, "B", 4, (1, 1, 0, 0), True),
            (274, "H", 1, shot.orientation, True),
            (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
            (50778, "H", 1, 21, True), (50728, "2I", 3, (1, 1, 1, 1, 1, 1), True)]
    if shot.make:
        tags.append((271, "s", 0, shot.make, True))
    if shot.model:
        tags += [(272, "s", 0, shot.model, True), (50708, "s", 0, f"{shot.make or ''} {shot.model}".strip(), True)]
    if shot.taken is not None:
        tags.append((36867, "s", 0, shot.taken.strftime("%Y:%m:%d %H:%M:%S"), True))
    cfa = [(33421, "H", 2, (2, 2), True), (33422, "B", 4, (0, 1, 1, 2), True), (50714, "H", 1, 0, True),
           (50717, "H", 1, 4095, True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        if preview:
            small = image.copy()
            small.thumbnail((preview, preview))
            buf = io.BytesIO()
            small.convert("RGB").save(buf, "JPEG", quality=90)
            # tifffile asks for a JPEG codec even for bytes already encoded: it is never called
            tifffile.TIFF.COMPRESSORS._codecs.setdefault(7, _never)
            tif.write(iter([buf.getvalue()]), shape=(small.height, small.width, 3), dtype=np.uint8,
                      photometric="ycbcr", compression=7, subsampling=(2, 2), rowsperstrip=small.height,
                      subfiletype=1, subifds=1, extratags=tags, metadata=None)
            tif.write(raw, photometric=32803, subfiletype=0, extratags=cfa, metadata=None)
        else:
            tif.write(raw, photometric=32803, subfiletype=0, extratags=tags + cfa, metadata=None)
    return path


def _never(*args, **kwargs):
    raise RuntimeError("tifffile tried to encode a JPEG: the preview is passed pre-encoded")


def write_video(path: Path, frames: Sequence[Image.Image], fps: int = 10, seconds_each: float = 1.0,
                created: str | None = None, location: str | None = None, apple_date: str | None = None,
                codec: str = "libx264") -> Path:
    """An MP4/MOV showing each of ``frames`` for ``seconds_each``, with container tags: ``created``
    (``creation_time``, UTC ISO 8601), ``location`` (ISO 6709), ``apple_date`` (QuickTime's local
    creation date with offset)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    width, height = frames[0].size
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as container:
        if created:
            container.metadata["creation_time"] = created
        if location:
            container.metadata["location"] = location
            container.metadata["com.apple.quicktime.location.ISO6709"] = location
        if apple_date:
            container.metadata["com.apple.quicktime.creationdate"] = apple_date
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = max(1, round(float(fps)))  # a keyframe a second, as phones write
        for image in frames:
            arr = np.asarray(image.convert("RGB"))
            for _ in range(max(1, round(seconds_each * fps))):
                for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@dataclass
class Library:
    """A generated library folder and its ground truth: labels per file, what each file's
    metadata says, and the stacks (RAW + JPEG, Live Photos) it holds."""

    root: Path
    labels: dict[str, list[str]] = field(default_factory=dict)
    shots: dict[str, Shot] = field(default_factory=dict)
    stacks: list[list[str]] = field(default_factory=list)


def scene(seed: int) -> Scene:
    return sample_scene(np.random.default_rng(seed))


PARIS = (48.8566, 2.3522)
NEW_YORK = (40.7128, -74.0060)
SYDNEY = (-33.8688, 151.2093)


def phone_library(root: Path, seed: int = 0) -> Library:
    """A folder laid out the way a phone and a camera leave one: HEIC photos with EXIF date,
    offset and GPS (one of them upright only through its orientation tag); a camera JPEG with its
    DNG beside it; a DNG alone (no preview); an MP4 with a place; a Live Photo (HEIC + MOV of one
    name); a resized and a cropped copy of one JPEG; a scan (PNG, no EXIF)."""
    rng = np.random.default_rng(seed)
    lib = Library(root)

    def add(name: str, sc: Scene, shot: Shot) -> Path:
        lib.labels[name], lib.shots[name] = scene_labels(sc), shot
        return root / name

    iphone = dict(make="Apple", model="iPhone 14 Pro", lens="iPhone 14 Pro back triple camera 6.86mm f/1.78")
    s1, s2, s3, s4, s5, s6, s7 = (scene(seed * 100 + i) for i in range(1, 8))
    shot = Shot(taken=datetime(2023, 7, 14, 12, 0, 5), offset="+02:00", lat=PARIS[0], lon=PARIS[1], **iphone)
    write_still(add("DCIM/IMG_0001.HEIC", s1, shot), picture(s1, rng), shot)
    shot = Shot(taken=datetime(2023, 7, 15, 18, 30), offset="-04:00", lat=NEW_YORK[0], lon=NEW_YORK[1],
                orientation=6, **iphone)
    # stored sideways, as a phone held upright writes it: the orientation tag turns it
    write_still(add("DCIM/IMG_0002.HEIC", s2, shot), picture(s2, rng, (320, 240)).transpose(Image.Transpose.ROTATE_90),
                shot)
    camera = dict(make="Canon", model="Canon EOS R5", lens="RF24-105mm F4 L IS USM")
    shot = Shot(taken=datetime(2023, 8, 1, 9, 15), offset="+10:00", lat=SYDNEY[0], lon=SYDNEY[1], **camera)
    image = picture(s3, rng, (384, 256))
    write_still(add("camera/IMG_1001.JPG", s3, shot), image, shot)
    raw_shot = Shot(taken=shot.taken, make=camera["make"], model=camera["model"])
    write_dng(add("camera/IMG_1001.DNG", s3, raw_shot), image, raw_shot, preview=384)
    shot = Shot(taken=datetime(2022, 12, 24, 20, 0), make="Nikon", model="Z 6II")
    write_dng(add("camera/DSC_2002.DNG", s4, shot), picture(s4, rng, (256, 256)), shot, preview=None)
    frames = [picture(s5, rng), picture(s6, rng), picture(s5, rng)]
    write_video(add("DCIM/MVI_0003.MP4", s5, Shot(taken=datetime(2023, 7, 14, 10, 0), lat=PARIS[0], lon=PARIS[1])),
                frames, seconds_each=2.0, created="2023-07-14T10:00:00.000000Z", location="+48.8566+002.3522/")
    lib.labels["DCIM/MVI_0003.MP4"] = sorted(set(scene_labels(s5)) | set(scene_labels(s6)))
    shot = Shot(taken=datetime(2023, 7, 16, 11, 0), offset="+02:00", lat=PARIS[0], lon=PARIS[1], **iphone)
    live = picture(s7, rng)
    write_still(add("DCIM/IMG_0004.HEIC", s7, shot), live, shot)
    write_video(add("DCIM/IMG_0004.MOV", s7, Shot(taken=datetime(2023, 7, 16, 11, 0), offset="+02:00")),
                [live], seconds_each=2.0, apple_date="2023-07-16T11:00:00+0200", location="+48.8566+002.3522/")
    original = picture(s1, rng, (512, 512))
    write_still(add("copies/original.jpg", s1, Shot()), original, Shot())
    write_still(add("copies/resized.jpg", s1, Shot()), original.resize((256, 256)), Shot(), quality=80)
    write_still(add("copies/cropped.jpg", s1, Shot()), original.crop((16, 16, 496, 496)), Shot())
    scan_scene = scene(seed * 100 + 9)
    path = add("scans/scan_001.png", scan_scene, Shot())
    path.parent.mkdir(parents=True, exist_ok=True)
    picture(scan_scene, rng).save(path)
    lib.stacks = [["camera/IMG_1001.JPG", "camera/IMG_1001.DNG"], ["DCIM/IMG_0004.HEIC", "DCIM/IMG_0004.MOV"]]
    return lib


def bad_files(root: Path, seed: int = 0) -> dict[str, str]:
    """Files a library also holds that cannot be (fully) tagged, and what must become of each:
    ``failed`` (recorded with a reason) or ``tagged`` (within bounds)."""
    from fractions import Fraction

    rng = np.random.default_rng(seed)
    good = root / "bad" / "whole.heic"
    write_still(good, picture(scene(seed + 50), rng), Shot(taken=datetime(2023, 1, 1, 12, 0)))
    data = good.read_bytes()
    (root / "bad" / "truncated.heic").write_bytes(data[: len(data) // 2])
    good.unlink()
    (root / "bad" / "corrupt.dng").write_bytes(b"II*\x00" + bytes(rng.integers(0, 256, 4000, dtype=np.uint8)))
    (root / "bad" / "noframes.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
    # an hour of video (one frame a minute) and 8K frames: tagged, from at most 16 frames, scaled down
    write_video(root / "bad" / "hour.mp4", [picture(scene(seed + 51 + i % 3), rng, (64, 64)) for i in range(60)],
                fps=Fraction(1, 60), seconds_each=60.0)
    write_video(root / "bad" / "eightk.mp4", [picture(scene(seed + 55), rng, (7680, 4320))], fps=2, seconds_each=1.0)
    return {"bad/truncated.heic": "failed", "bad/corrupt.dng": "failed", "bad/noframes.mp4": "failed",
            "bad/hour.mp4": "tagged", "bad/eightk.mp4": "tagged"}

"""Frames sampled across a video (MP4, MOV, M4V, MKV, WEBM, AVI, 3GP) through PyAV (FFmpeg).

A clip becomes at most :data:`MAX_FRAMES` frames, one every :data:`EVERY_S` seconds spread evenly
over its length (a 3 s Live Photo: 2 frames; a 10 min film: 16), each reached by a seek to the
keyframe before it: that keyframe alone when it lies within :data:`NEAR_S` of the time (one
decoded frame; phones write a keyframe a second), else a bounded decode forward from it. The
work is bounded whatever the file: hours of video cost 16 seeks, and an 8K frame is scaled down by
FFmpeg's scaler as it leaves the decoder.
The display rotation phones record is applied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from core.media.errors import ImageDecodeError, one_line
from core.media.kinds import VIDEO, require
from core.media.limits import check_pixels
from core.media.metadata import Capture, from_container

MAX_FRAMES = 16
EVERY_S = 2.0
MAX_DECODED_PER_SEEK = 240  # frames decoded forward from a keyframe before giving up on a time
NEAR_S = 0.5  # a keyframe this close before a sampled time stands for it (phones write one a second)
MAX_SIDE = 1024  # frames leave the decoder with their longest side at most this


@dataclass(frozen=True)
class Clip:
    frames: list[tuple[float, Image.Image]]  # (time in seconds, upright RGB frame)
    width: int                                # as displayed
    height: int
    duration_s: float | None
    capture: Capture


def sample_times(duration_s: float | None, every_s: float = EVERY_S, most: int = MAX_FRAMES) -> list[float]:
    """The times to sample: the middles of ``n`` equal parts, ``n`` = one per ``every_s``, 1..``most``."""
    if not duration_s or not math.isfinite(duration_s) or duration_s <= 0:
        return [0.0]
    n = max(1, min(most, math.ceil(duration_s / every_s)))
    return [round((i + 0.5) * duration_s / n, 3) for i in range(n)]


def read_clip(path: str, max_pixels: int, min_side: int | None = None, at_s: float | None = None,
              one: bool = False) -> Clip:
    """Decode a video's sampled frames and read its container's tags (from the file: a video can
    be gigabytes, so it is never read whole). ``at_s``: only the frame at that time; ``one``:
    only the middle frame (thumbnails).

    Raises:
        ImageDecodeError: not a video FFmpeg can read, no video stream, no decodable frame, or
            frames over ``max_pixels``.
    """
    av = require(VIDEO)
    try:
        with av.open(path, mode="r", metadata_errors="ignore") as container:
            if not container.streams.video:
                raise ImageDecodeError("no video stream (audio only?)")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            if width and height:
                check_pixels((width, height), max_pixels)
            duration = _duration(container, stream)
            tags = {**dict(stream.metadata or {}), **dict(container.metadata or {})}
            frames = _frames(container, stream, _times(duration, at_s, one), max_pixels, min_side)
    except ImageDecodeError:
        raise
    except MemoryError as exc:
        raise ImageDecodeError("cannot decode video: out of memory") from exc
    except Exception as exc:  # noqa: BLE001 - FFmpeg's errors come in many classes
        raise ImageDecodeError(_video_reason(exc)) from exc
    if not frames:
        raise ImageDecodeError("no decodable video frame")
    shown = frames[0][1].size
    scale = max(width, height) / max(shown) if width and height else 1.0
    display = (round(shown[0] * scale), round(shown[1] * scale))
    return Clip(frames, display[0], display[1], duration, from_container(tags, duration))


def read_tags(path: str) -> Capture:
    """What a video's container says about its shot, without decoding a frame."""
    av = require(VIDEO)
    with av.open(path, mode="r", metadata_errors="ignore") as container:
        stream = container.streams.video[0] if container.streams.video else None
        tags = {**dict(stream.metadata or {}), **dict(container.metadata or {})} if stream else dict(container.metadata)
        return from_container(tags, _duration(container, stream) if stream else None)


def _times(duration: float | None, at_s: float | None, one: bool) -> list[float]:
    if at_s is not None:
        return [max(0.0, at_s)]
    return [duration / 2 if duration else 0.0] if one else sample_times(duration)


def _duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _frames(container, stream, times: list[float], max_pixels: int,
            min_side: int | None) -> list[tuple[float, Image.Image]]:
    out: list[tuple[float, Image.Image]] = []
    base, ctx = stream.time_base, stream.codec_context
    for t in times:
        if base is not None and t > 0:
            container.seek(int(t / base), stream=stream, backward=True, any_frame=False)
        else:
            container.seek(0)
        ctx.skip_frame = "NONKEY"  # the keyframe the seek landed on, decoded alone, is usually near enough
        chosen = None
        for n, frame in enumerate(container.decode(stream)):
            chosen = frame
            if frame.time is None or frame.time >= t - NEAR_S or n >= MAX_DECODED_PER_SEEK:
                break
            ctx.skip_frame = "DEFAULT"  # it is not: decode on from it to the time
        if chosen is None:
            continue
        out.append((round(float(chosen.time if chosen.time is not None else t), 3),
                    _upright(chosen, max_pixels, min_side)))
    # a seek that landed on the same frame twice (a short clip with one keyframe) gives one frame
    unique: dict[float, Image.Image] = {}
    for t, img in out:
        unique.setdefault(t, img)
    return sorted(unique.items())


def _upright(frame, max_pixels: int, min_side: int | None) -> Image.Image:
    check_pixels((frame.width, frame.height), max_pixels)
    rotation = getattr(frame, "rotation", 0) or 0
    longest = max(frame.width, frame.height)
    limit = MAX_SIDE if min_side is None else max(MAX_SIDE, 2 * min_side)
    if longest > limit:
        scale = limit / longest
        frame = frame.reformat(width=max(2, round(frame.width * scale)), height=max(2, round(frame.height * scale)))
    image = frame.to_image()
    return image.rotate(rotation, expand=True) if rotation % 360 else image


def _video_reason(exc: Exception) -> str:
    name = type(exc).__name__
    if name in ("InvalidDataError", "EOFError"):
        return "not a video FFmpeg can read (unsupported, truncated or corrupt)"
    return one_line(f"cannot decode video: {name}: {exc}")

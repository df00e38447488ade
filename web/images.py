"""One image: its page with stored tags, and its thumbnail (registered images only)."""

from __future__ import annotations

import hashlib
from functools import partial

from flask import Blueprint, Response, abort, jsonify, render_template, request, send_file, url_for

from core.bounds import whole_number
from core.errors import TagscopeError
from core.file_cache import FileCache
from core.media.errors import ImageDecodeError
from core.media.kinds import VIDEO, media_kind
from core.media.read import thumbnail as media_thumbnail
from indexer.search.checks import MAX_DEPTH
from indexer.search.evidence import NO_LOCAL_STREAM
from web.context import get_searcher, get_settings, image_or_404, record_or_404
from web.params import PER_PAGE, SearchArgs
from web.photo_text import page_lines

bp = Blueprint("images", __name__)
THUMB_SIZE = 256
FULL_SIZE = 4096
BROWSER_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "GIF": "image/gif",
                   "WEBP": "image/webp", "BMP": "image/bmp"}


@bp.get("/image/<id:image_id>")
def page(image_id: int):
    """The image with its tags and the text read in it (its lines' boxes outlined over the photo).
    Opened from results (``q`` or ``like``, filters, ``r`` = its rank), it links to the previous
    and next result and back to the page of results it was on, and marks the words of ``q`` in
    the photo's text."""
    record = record_or_404(image_id)
    args, rank = None, None
    try:
        args = SearchArgs.parse(request.args)
        rank = whole_number(request.args.get("r"), "r", 0, MAX_DEPTH - 1) if args and "r" in request.args else None
    except TagscopeError:
        args = None  # a hand-edited link: show the image without its neighbours
    neighbours = _neighbours(args, rank, image_id) if args is not None and rank is not None else {}
    back = None
    if args is not None:
        back = url_for("search.page", page=(rank or 0) // PER_PAGE + 1, **args.url_args())
    why = " ".join(request.args.get("why", "").split())[:200] or None
    why_reason = None
    if why is not None and get_searcher().model.local_top_k <= 0:
        why_reason = NO_LOCAL_STREAM
    query = args.q if args else ""
    return render_template("image.html", image=record, args=args, rank=rank, back=back, query=query,
                           folder=_folder(record["path"]), why=why, why_reason=why_reason,
                           text_lines=page_lines(record["text"], query or request.args.get("q", "")[:500]),
                           **neighbours)


def _neighbours(args: SearchArgs, rank: int, image_id: int) -> dict[str, str | None]:
    """Links to the results ranked just before and after ``rank`` (when the image is still there)."""
    hits = args.at(rank - 1 if rank else 0, k=3 if rank else 2).run().hits
    ids = [h.image_id for h in hits]
    if image_id not in ids:
        return {}
    at = ids.index(image_id)
    link = partial(url_for, "images.page", **args.url_args())
    return {"prev_url": link(image_id=ids[at - 1], r=rank - 1) if at > 0 else None,
            "next_url": link(image_id=ids[at + 1], r=rank + 1) if at + 1 < len(ids) else None}


def _folder(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[0] or "/"


@bp.get("/image/<id:image_id>/full")
def full_size(image_id: int):
    """The photo itself: the original file when browsers show its format, else a JPEG of it
    (TIFF, HEIC, RAW; a video's middle frame, or its frame at ``?t=SECONDS``) at up to
    ``FULL_SIZE`` pixels a side."""
    img = image_or_404(image_id)
    fs_path, fmt = img.fs_path, img.format
    try:
        if fmt in BROWSER_FORMATS:
            resp = send_file(fs_path, mimetype=BROWSER_FORMATS[fmt], conditional=True, max_age=3600)
        else:
            data = media_thumbnail(fs_path, FULL_SIZE, get_settings().max_pixels, at_s=_frame_time())
            resp = Response(data, mimetype="image/jpeg")
    except (ImageDecodeError, OSError):
        abort(404, description="the photo can no longer be read from its file")
    resp.headers["Content-Disposition"] = "inline"
    return resp


@bp.get("/api/images/<id:image_id>")
def api_image(image_id: int):
    return jsonify(record_or_404(image_id))


@bp.get("/thumb/<id:image_id>")
def thumbnail(image_id: int):
    """Thumbnails exist only for registered images: no path ever comes from the request. A
    video's is its middle frame, or its frame at ``?t=SECONDS`` (a search hit's best frame); a
    photo has one thumbnail whatever ``t`` says. Kept in a cache bounded by ``thumb_cache_mb``
    (:mod:`core.file_cache`: the least recently used go)."""
    settings, img = get_settings(), image_or_404(image_id)
    at_s = _frame_time() if media_kind(img.fs_path) == VIDEO else None
    fs_path, stamp = img.fs_path, f"{img.id}:{img.size_bytes}:{img.mtime}:{at_s}"
    etag = hashlib.sha1(stamp.encode()).hexdigest()
    cache = FileCache(settings.thumbs_dir, settings.thumb_cache_mb << 20)
    data = cache.get(etag)
    if data is None:
        try:
            data = media_thumbnail(fs_path, THUMB_SIZE, settings.max_pixels, at_s=at_s)
        except (ImageDecodeError, OSError):
            abort(404)
        cache.put(etag, data)
    resp = Response(data, mimetype="image/jpeg")
    resp.set_etag(etag)
    resp.cache_control.max_age = 3600
    return resp.make_conditional(request)


def _frame_time() -> float | None:
    """``?t=SECONDS``: which frame of a video to show (a hit's best frame), rounded to 0.1 s."""
    value = request.args.get("t")
    if value in (None, ""):
        return None
    try:
        t = float(value)
    except ValueError:
        abort(400, description=f"t must be a time in seconds, got {value!r}")
    if not 0 <= t < 1e6:
        abort(400, description=f"t must be a time in seconds within the video, got {value!r}")
    return round(t, 1)

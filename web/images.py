"""One image: its page with stored tags, and its thumbnail (registered images only)."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request

from core.atomic import atomic_write_bytes
from core.db import Image, get_database
from core.images import ImageDecodeError, make_thumbnail
from tagger.status import image_record

bp = Blueprint("images", __name__)
THUMB_SIZE = 256


def _record(image_id: int) -> dict:
    record = image_record(get_database(current_app.config["TAGSCOPE_SETTINGS"].db_url), image_id)
    if record is None:
        abort(404)
    return record


@bp.get("/image/<id:image_id>")
def page(image_id: int):
    """The image with its tags; ``q`` (the search it was opened from) stays in the search box and
    gives the way back to the results."""
    return render_template("image.html", image=_record(image_id), query=request.args.get("q", "").strip()[:300])


@bp.get("/api/images/<id:image_id>")
def api_image(image_id: int):
    return jsonify(_record(image_id))


@bp.get("/thumb/<id:image_id>")
def thumbnail(image_id: int):
    """Thumbnails exist only for registered images: no path ever comes from the request."""
    settings = current_app.config["TAGSCOPE_SETTINGS"]
    with get_database(settings.db_url).session() as s:
        img = s.get(Image, image_id)
        if img is None:
            abort(404)
        fs_path, stamp = img.fs_path, f"{img.id}:{img.size_bytes}:{img.mtime}"
    etag = hashlib.sha1(stamp.encode()).hexdigest()
    cache = settings.thumbs_dir / f"{etag}.jpg"
    if cache.exists():
        data = cache.read_bytes()
    else:
        try:
            data = make_thumbnail(fs_path, size=THUMB_SIZE, max_pixels=settings.max_pixels)
        except (ImageDecodeError, OSError):
            abort(404)
        atomic_write_bytes(cache, data)  # concurrent first requests each write their own temp file
    resp = Response(data, mimetype="image/jpeg")
    resp.set_etag(etag)
    resp.cache_control.max_age = 3600
    return resp.make_conditional(request)

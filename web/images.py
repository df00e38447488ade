"""One image: its page with stored tags, and its thumbnail (registered images only)."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, abort, current_app, jsonify, render_template, request
from sqlalchemy import select

from core.atomic import atomic_write_bytes
from core.db import Image, Label, ModelVersion, Tag, get_database
from core.images import ImageDecodeError, make_thumbnail

bp = Blueprint("images", __name__)
THUMB_SIZE = 256


def _image_and_tags(image_id: int) -> tuple[Image, list[tuple[str, float, str]]]:
    settings = current_app.config["TAGSCOPE_SETTINGS"]
    with get_database(settings.db_url).session() as s:
        img = s.get(Image, image_id)
        if img is None:
            abort(404)
        source = img.duplicate_of or img.id  # a duplicate shows its original's tags
        tags = s.execute(select(Label.name, Tag.score, ModelVersion.version)
                         .join(Label, Label.id == Tag.label_id)
                         .join(ModelVersion, ModelVersion.id == Tag.model_version_id)
                         .where(Tag.image_id == source).order_by(Tag.score.desc())).all()
    return img, [tuple(t) for t in tags]


@bp.get("/image/<int:image_id>")
def page(image_id: int):
    img, tags = _image_and_tags(image_id)
    return render_template("image.html", image=img, tags=tags)


@bp.get("/api/images/<int:image_id>")
def api_image(image_id: int):
    img, tags = _image_and_tags(image_id)
    return jsonify({"image_id": img.id, "path": img.path, "status": img.status, "error": img.error,
                    "width": img.width, "height": img.height, "duplicate_of": img.duplicate_of,
                    "tags": [{"label": n, "score": sc, "model_version": v} for n, sc, v in tags]})


@bp.get("/thumb/<int:image_id>")
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

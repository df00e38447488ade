"""Search by a photo the user uploads: ``POST /search/photo`` (the page) and ``POST
/api/search/photo`` (JSON). The photo is decoded in memory, embedded and dropped: never written
to disk or the database. Limits: ``MAX_UPLOAD_BYTES`` (a larger body is a 413) and
``MAX_UPLOAD_PIXELS``; formats are those the tagger reads."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from core.errors import TagscopeError
from core.media.errors import ImageDecodeError
from core.media.stills import image_from_bytes
from indexer.search.checks import check_k
from indexer.search.filters import Filters
from indexer.search.results import Results
from tagger.status import collection_status
from web.context import get_decided_searcher, get_searcher, get_settings
from web.errors import respond
from web.params import PER_PAGE

bp = Blueprint("upload", __name__)
MAX_UPLOAD_BYTES = 20 << 20
MAX_UPLOAD_PIXELS = 50_000_000
ACCEPTED = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF")


def _photo_results(k_default: int) -> Results:
    file: FileStorage | None = request.files.get("photo")
    if file is None or not file.filename and not file.content_length:
        raise TagscopeError("no photo: send one as the multipart form field \"photo\"")
    data = file.read(MAX_UPLOAD_BYTES + 1)
    if not data:
        raise TagscopeError("the photo is empty: choose a JPEG, PNG or WebP file")
    try:
        photo, info = image_from_bytes(data, max_pixels=MAX_UPLOAD_PIXELS)
    except ImageDecodeError as exc:
        raise TagscopeError(f"cannot read the photo ({exc}): send a JPEG, PNG, WebP, GIF, BMP or TIFF") from None
    if info.format not in ACCEPTED:
        raise TagscopeError(f"{info.format} photos are not accepted here: send a JPEG, PNG, WebP, GIF, BMP or TIFF")
    k = check_k(request.form.get("k", request.args.get("k", k_default)))
    filters = Filters.from_args(request.form)
    vector = get_searcher().embed_photo(photo)
    del photo, data
    return get_decided_searcher().find(image=vector, k=k, filters=filters)


@bp.app_errorhandler(RequestEntityTooLarge)
def too_large(_exc: RequestEntityTooLarge):
    return respond(413, f"the request is larger than {MAX_UPLOAD_BYTES >> 20} MB: send a smaller photo "
                        "(or a JPEG of it)")


@bp.post("/search/photo")
def page():
    results, error = None, None
    try:
        results = _photo_results(PER_PAGE)
    except TagscopeError as exc:
        error = str(exc)
    status = collection_status(get_settings(), max_failures=0)
    html = render_template("upload.html", results=results, error=error, status=status)
    return html, 400 if error else 200


@bp.post("/api/search/photo")
def api():
    return jsonify(_photo_results(20).to_json())

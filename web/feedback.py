"""Curation: confirm or reject a photo's tag, or add one by hand, from its page or the API.

``POST /api/images/<id>/feedback`` (JSON ``{"label", "verdict"}``, verdict ``confirm``,
``reject`` or ``clear``) answers the photo's record with its tags as people now see them;
``POST /image/<id>/feedback`` is the page's form and sends the browser back to the page. Both
are writes: refused from other sites' pages and, when the server has an access token, without
it (:mod:`web.security`)."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, redirect, request, url_for

from core import feedback
from indexer.search.filters import NAMES
from web.body import json_body
from web.context import get_db, record_or_404

bp = Blueprint("feedback", __name__)
KEPT_ARGS = ("q", "like", *NAMES, "sort", "r")  # the search the page was opened from


def _apply(image_id: int, label: str | None, verdict: str | None) -> None:
    db = get_db()
    if verdict == "clear":
        feedback.clear(db, image_id, label or "")
        return
    try:
        feedback.record(db, image_id, label or "", verdict or "")
    except LookupError:
        abort(404, description=f"no image {image_id}")


@bp.post("/api/images/<id:image_id>/feedback")
def api(image_id: int):
    body = json_body('{"label": "golden retriever", "verdict": "confirm"} (verdict: confirm, reject or clear)',
                     ask="send JSON")
    _apply(image_id, body.get("label"), body.get("verdict"))
    return jsonify(record_or_404(image_id))


@bp.post("/image/<id:image_id>/feedback")
def form(image_id: int):
    _apply(image_id, request.form.get("label"), request.form.get("verdict"))
    kept = {key: request.form[key] for key in KEPT_ARGS if request.form.get(key)}
    return redirect(url_for("images.page", image_id=image_id, **kept) + "#tags", code=303)

"""Why a tag: ``GET /api/images/<id>/evidence?label=...`` (patch scores, :mod:`indexer.search.evidence`)
and ``GET /image/<id>/evidence.png?label=...``, the same as a heatmap over the photo (the
centre square the model saw; the cells the local stream averages outlined)."""

from __future__ import annotations

import io

import numpy as np
from flask import Blueprint, Response, abort, jsonify, request
from PIL import Image, ImageDraw

from core.feedback import normalise
from core.media.errors import ImageDecodeError
from core.media.read import thumbnail as media_thumbnail
from indexer.search.evidence import Evidence, evidence
from web.context import get_searcher, image_or_404

bp = Blueprint("evidence", __name__)
SIZE = 320


def _evidence(image_id: int) -> tuple[Evidence, str]:
    label = normalise(request.args.get("label", ""))
    fs_path = image_or_404(image_id).fs_path
    found = get_searcher()
    return evidence(found.model, found.db, found.version_id(), image_id, found.embed_query(label), label), fs_path


@bp.get("/api/images/<id:image_id>/evidence")
def api(image_id: int):
    return jsonify(_evidence(image_id)[0].to_json())


@bp.get("/image/<id:image_id>/evidence.png")
def heatmap(image_id: int):
    found, fs_path = _evidence(image_id)
    if not found.available:
        abort(404, description=found.reason)
    try:
        photo = Image.open(io.BytesIO(media_thumbnail(fs_path, SIZE))).convert("RGB")
    except (ImageDecodeError, OSError):
        abort(404, description="the photo can no longer be read from its file")
    return Response(render(photo, found), mimetype="image/png")


def render(photo: Image.Image, found: Evidence) -> bytes:
    """PNG bytes: the patch scores as red over the centre square of ``photo``, top cells outlined."""
    rows, cols = found.grid
    side = min(photo.size)
    left, top = (photo.width - side) // 2, (photo.height - side) // 2
    scores = np.asarray(found.scores, np.float32).reshape(rows, cols)
    spread = float(scores.max() - scores.min()) or 1.0
    alpha = ((scores - scores.min()) / spread * 160).astype(np.uint8)
    heat = Image.fromarray(alpha, "L").resize((side, side), Image.Resampling.NEAREST)
    red = Image.new("RGB", (side, side), (230, 30, 30))
    square = photo.crop((left, top, left + side, top + side))
    square.paste(red, (0, 0), heat)
    draw = ImageDraw.Draw(square)
    for index in found.top:
        r, c = divmod(index, cols)
        box = (c * side / cols, r * side / rows, (c + 1) * side / cols - 1, (r + 1) * side / rows - 1)
        draw.rectangle(box, outline=(255, 220, 0), width=2)
    photo.paste(square, (left, top))
    out = io.BytesIO()
    photo.save(out, format="PNG")
    return out.getvalue()

"""Search: the page with the query box, filters and results, and ``GET /api/search``.

Text queries split their results into "matches" (at or above the query's calibrated cutoff,
:mod:`indexer.search.relevance`) and the nearest others; ``like=<image id>`` searches by a photo of the
collection ("more like this"). Both page through the best ``MAX_DEPTH`` results."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from sqlalchemy import select

from core.errors import TagscopeError
from core.schema import Label
from indexer.search.checks import parse_min_score
from tagger.status import collection_status
from web.context import get_db, get_decided_searcher, get_searcher, get_settings
from web.params import SearchArgs
from web.saved import saved_for_page
from web.upload import MAX_UPLOAD_BYTES

bp = Blueprint("search", __name__)
MAX_TAG_CHOICES = 5000


def tag_choices() -> list[str]:
    """Active label names, offered by the tag filter."""
    with get_db().session() as s:
        return list(s.scalars(select(Label.name).where(Label.state == "active").order_by(Label.name)
                              .limit(MAX_TAG_CHOICES)))


@bp.get("/")
def page():
    args, results, error = None, None, None
    try:
        args = SearchArgs.parse(request.args)
        results = args.run() if args else None
    except TagscopeError as exc:
        error = str(exc)
    status = collection_status(get_settings(), max_failures=0)
    suggestions = get_searcher().model.suggested_queries if status["images"]["tagged"] and not results else []
    html = render_template("search.html", args=args, results=results, error=error, status=status,
                           suggestions=suggestions,
                           query=(args.q if args else request.args.get("q", "")) or "", tags=tag_choices(),
                           filters=args.filters if args else None, upload_mb=MAX_UPLOAD_BYTES >> 20,
                           saved=saved_for_page())
    return html, 400 if error else 200


@bp.get("/api/search")
def api_search():
    args = SearchArgs.parse(request.args, k_default=20)
    if args is None:
        raise TagscopeError("empty query: pass q (a text) or like (an image id), e.g. /api/search?q=red+bicycle, "
                            "or a filter or sort to list photos by date")
    min_score = parse_min_score(request.args.get("min_score"))
    if min_score is not None and args.q is not None:
        results = get_decided_searcher().find(args.q, k=args.k, offset=args.offset, min_score=min_score,
                                              filters=args.filters, sort=args.sort)
    else:
        results = args.run()
    return jsonify(results.to_json())


@bp.get("/api/status")
def api_status():
    """The collection's status, without what only this machine's owner should see (the database
    URL, which may hold a password; the index file's path)."""
    status = collection_status(get_settings())
    status.pop("database", None)
    status["index"].pop("path", None)
    return jsonify(status)

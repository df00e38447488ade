"""Search: the page with the query box and results grid, and ``GET /api/search``."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template, request

from core.errors import TagscopeError
from indexer.search import Searcher, check_query, parse_min_score
from tagger.status import collection_status

bp = Blueprint("search", __name__)


def searcher() -> Searcher:
    return current_app.extensions["tagscope.searcher"]


@bp.get("/")
def page():
    query = request.args.get("q", "").strip()
    k = request.args.get("k", 40)
    hits, error = [], None
    if query:
        try:
            hits = searcher().search(query, k)
        except TagscopeError as exc:
            error = str(exc)
    status = collection_status(current_app.config["TAGSCOPE_SETTINGS"], max_failures=0)
    page = render_template("search.html", query=query, hits=hits, error=error, status=status)
    return page, 400 if error else 200


@bp.get("/api/search")
def api_search():
    text, k = check_query(request.args.get("q"), request.args.get("k", 20))
    hits = searcher().search(text, k, parse_min_score(request.args.get("min_score")))
    return jsonify({"query": text, "results": [h.to_json() for h in hits]})


@bp.get("/api/status")
def api_status():
    """The collection's status, without what only this machine's owner should see (the database
    URL, which may hold a password; the index file's path)."""
    status = collection_status(current_app.config["TAGSCOPE_SETTINGS"])
    status.pop("database", None)
    status["index"].pop("path", None)
    return jsonify(status)

"""Browsing without a text: the library grouped by month, place, country, camera or tag, with
counts and a few photos each, narrowed by the same filters as search (``/browse``,
``GET /api/browse``). Each group links to the listing of its photos by date: the search page
with the group's filter and no text (``/?taken=2023-07``). By tag the groups are the keyword
tree, nested (``children``): a keyword counts the photos that have it or a keyword under it,
and its link (``/?tag=Mammals``) lists them all."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request, url_for

from core.bounds import whole_number
from core.errors import TagscopeError
from indexer.search import browse
from indexer.search.filters import Filters
from web.context import get_decided_searcher
from web.search import tag_choices

bp = Blueprint("browse", __name__)


def _groups():
    by = browse.check_grouping(request.args.get("by"))
    filters = Filters.from_args(request.args)
    limit = whole_number(request.args.get("limit", browse.MAX_GROUPS), "limit", 1, browse.MAX_GROUPS)
    s = get_decided_searcher()
    groups, ungrouped = browse.groups(s.db, filters, s.version_id(), by, limit=limit)
    return by, filters, groups, ungrouped


def group_url(filters: Filters, group: browse.Group) -> str:
    """The listing of a group's photos, newest first, within the current filters."""
    args = {key: value for key, value in filters.to_json().items() if value}
    args.update(group.filters)
    return url_for("search.page", **args)


@bp.get("/browse")
def page():
    try:
        by, filters, groups, ungrouped = _groups()
        error = None
    except TagscopeError as exc:
        by, filters, groups, ungrouped, error = request.args.get("by", "month"), None, [], 0, str(exc)
    html = render_template("browse.html", by=by, filters=filters, groups=groups, ungrouped=ungrouped, error=error,
                           groupings=browse.GROUPINGS, group_url=group_url, tags=tag_choices(),
                           filter_args={k: v for k, v in filters.to_json().items() if v} if filters else {})
    return html, 400 if error else 200


@bp.get("/api/browse")
def api_browse():
    by, filters, groups, ungrouped = _groups()
    return jsonify({"by": by, "filters": filters.to_json(), "ungrouped": ungrouped,
                    "groups": [_group_json(filters, g) for g in groups]})


def _group_json(filters: Filters, group: browse.Group) -> dict:
    """A group with its listing's URL, and so each keyword under it (by tag: the tree, nested)."""
    return {**group.to_json(), "url": group_url(filters, group),
            "children": [_group_json(filters, child) for child in group.children]}

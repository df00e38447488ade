"""Saved searches on the web: a named query with its filters and sort (:mod:`indexer.search.saved`).

``GET /api/saved`` lists them, ``POST /api/saved`` (JSON ``{"name", "q", filters..., "sort",
"replace"}``) saves one (201; an existing name is a 409 unless ``replace`` is true), ``DELETE
/api/saved/NAME`` forgets one. ``/saved`` is a page of them (with ``q`` and filters in its address it
offers to save that search); its forms post to ``/saved`` and ``/saved/remove``. The search page
shows the same list and form through the ``_saved.html`` partial and :func:`saved_for_page`.
Writes follow :mod:`web.security`: refused from other sites' pages and, with an access token, without it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import Conflict, NotFound

from core.errors import TagscopeError
from indexer.search import saved as store
from indexer.search.filters import NAMES
from web.body import json_body
from web.context import get_db

bp = Blueprint("saved", __name__)
FIELDS = ("q", *NAMES, "sort")  # a saved search, as the search page's arguments
BODY_FIELDS = frozenset(("name", "replace", *FIELDS))


def _record(s: store.Saved) -> dict[str, Any]:
    return {**s.to_json(), "url": url_for("search.page", **s.url_args())}


def saved_for_page() -> list[dict[str, Any]]:
    """The saved searches as the search page lists them, by name: ``{name, url}`` (the search page's
    address that runs it), with ``id``, ``q``, ``filters``, ``sort`` and the times."""
    return [_record(s) for s in store.list_saved(get_db())]


def _save(values: Any, replace: bool, taken_fix: str) -> tuple[store.Saved, bool]:
    filters = {name: values.get(name) for name in NAMES if values.get(name) is not None}
    try:
        return store.save(get_db(), values.get("name"), values.get("q"), filters, values.get("sort"), replace=replace)
    except store.NameTaken:
        name = store.check_name(values.get("name"))
        raise Conflict(f"a saved search named {name!r} exists: {taken_fix}") from None


def _remove(name: str, list_fix: str) -> store.Saved:
    try:
        return store.remove(get_db(), name)
    except store.NoSuchSaved:
        raise NotFound(f"no saved search named {name.strip()!r}: {list_fix}") from None


@bp.get("/api/saved")
def api_list():
    return jsonify({"saved": saved_for_page()})


@bp.post("/api/saved")
def api_save():
    body = json_body('{"name": "summer beaches", "q": "beach", "taken": "2023-07", "sort": "relevance"}',
                     ask="send JSON")
    unknown = sorted(set(body) - BODY_FIELDS)
    if unknown:
        raise TagscopeError(f"unknown field {unknown[0]!r}: send name, q, sort, replace and the filters "
                            f"{', '.join(NAMES)}")
    replace = body.get("replace", False)
    if not isinstance(replace, bool):
        raise TagscopeError(f"replace must be true or false, got {replace!r}")
    s, created = _save(body, replace, 'send "replace": true to replace it, or pick another name')
    return jsonify(_record(s)), 201 if created else 200


@bp.delete("/api/saved/<path:name>")
def api_remove(name: str):
    return jsonify(_record(_remove(name, "GET /api/saved lists them")))


@bp.get("/saved")
def page():
    current = {key: request.args[key] for key in FIELDS if request.args.get(key)}
    return render_template("saved.html", saved=saved_for_page(), current=current if current.get("q") else None,
                           removable=True)


@bp.post("/saved")
def form_save():
    """The "Save this search" form: saves, then back to the search it saved."""
    s, _ = _save(request.form, bool(request.form.get("replace")),
                 "pick another name, or remove that one on the saved searches page (/saved)")
    return redirect(url_for("search.page", **s.url_args()), code=303)


@bp.post("/saved/remove")
def form_remove():
    _remove(request.form.get("name") or "", "the saved searches page (/saved) lists them")
    return redirect(url_for("saved.page"), code=303)

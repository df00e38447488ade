"""Near-duplicates: ``GET /api/duplicates``, the page of groups (``/duplicates``) and one group's
review page (``/duplicates/<image id>``: each file side by side, the likely original first).

Groups come from the stored embeddings of the model the server serves (:mod:`indexer.search.duplicates`)
and are kept in this process, keyed by the model version, the threshold, the folder and the state
of the store (:func:`indexer.search.duplicates.store_state`): a page loads them once per change of the
collection. Reviewing is viewing: Tagscope never deletes or changes a photo."""

from __future__ import annotations

import threading
from collections import OrderedDict

from flask import Blueprint, abort, jsonify, render_template, request, url_for

from core.bounds import MAX_LIMIT, whole_number
from core.errors import TagscopeError
from indexer.search.duplicates import Report, find_duplicates, served_version, store_state
from indexer.search.similar import check_threshold
from web.context import get_db, get_searcher, get_settings

bp = Blueprint("duplicates", __name__)
GROUPS_PER_PAGE = 20
CACHED_REPORTS = 16

_reports: OrderedDict[tuple, Report] = OrderedDict()
_lock = threading.Lock()


def _count(name: str, default: int, lo: int, hi: int) -> int:
    value = request.args.get(name, "")
    return default if value == "" else whole_number(value, name, lo, hi)


def report() -> Report:
    """The groups at the request's ``threshold`` and ``folder`` (cached per store state)."""
    settings, db = get_settings(), get_db()
    threshold = check_threshold(request.args.get("threshold"))
    folder = (request.args.get("folder") or "").strip() or None
    version = get_searcher().model.version  # the model the server serves
    stored, _ = served_version(db, version=version)
    key = (threshold, folder, settings.duplicate_threshold, store_state(db, stored))
    with _lock:
        cached = _reports.get(key)
        if cached is not None:
            _reports.move_to_end(key)
            return cached
    found = find_duplicates(db, threshold, setting=settings.duplicate_threshold, version=version, folder=folder)
    with _lock:
        _reports[key] = found
        while len(_reports) > CACHED_REPORTS:
            _reports.popitem(last=False)
    return found


def _given() -> dict[str, str]:
    """The request's threshold and folder, to carry into links."""
    return {k: request.args[k] for k in ("threshold", "folder") if request.args.get(k)}


@bp.get("/api/duplicates")
def api_duplicates():
    limit = _count("limit", 50, 1, MAX_LIMIT)
    offset = _count("offset", 0, 0, 10**9)
    return jsonify(report().to_json(offset, limit))


@bp.get("/duplicates")
def page():
    error, found, page_no = None, None, 1
    try:
        page_no = _count("page", 1, 1, 10**6)
        found = report()
    except TagscopeError as exc:
        error = str(exc)
    groups = found.groups[(page_no - 1) * GROUPS_PER_PAGE:page_no * GROUPS_PER_PAGE] if found else []
    more = found is not None and page_no * GROUPS_PER_PAGE < len(found.groups)
    link = lambda n: url_for("duplicates.page", page=n, **_given())  # noqa: E731
    html = render_template("duplicates.html", report=found, groups=groups, error=error, given=_given(),
                           first=(page_no - 1) * GROUPS_PER_PAGE, prev_url=link(page_no - 1) if page_no > 1 else None,
                           next_url=link(page_no + 1) if more else None)
    return html, 400 if error else 200


@bp.get("/duplicates/<id:image_id>")
def group_page(image_id: int):
    """The group holding ``image_id``: its files side by side, the likely original first."""
    found = report()
    group = found.group_of(image_id)
    if group is None:
        abort(404, description=f"photo {image_id} has no near-duplicates at threshold {found.threshold:g}")
    return render_template("duplicate_group.html", report=found, group=group, given=_given(),
                           back=url_for("duplicates.page", **_given()))

"""What a request works with, as the app holds it (Flask's ``get_db`` pattern): the settings the
app was built with, their database, the one :class:`~indexer.search.searcher.Searcher`, and a
registered image or a 404. :func:`install` puts them in the app; every blueprint reads them here."""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, current_app

from core.db import Database
from core.schema import Image
from core.settings import Settings
from indexer.search.searcher import Searcher
from migrations import get_database
from tagger.decisions import ensure_decided
from tagger.status import image_record

SETTINGS = "TAGSCOPE_SETTINGS"  # app.config key
SEARCHER = "tagscope.searcher"  # app.extensions key


def install(app: Flask, settings: Settings) -> None:
    """Keep ``settings`` and a Searcher of them in ``app``; open the database now, so that a wrong
    URL fails at start-up rather than on the first request."""
    app.config[SETTINGS] = settings
    get_database(settings.db_url)
    app.extensions[SEARCHER] = Searcher(settings, keep_current=True)


def get_settings() -> Settings:
    return current_app.config[SETTINGS]


def get_db() -> Database:
    return get_database(get_settings().db_url)


def get_searcher(app: Flask | None = None) -> Searcher:
    """The app's Searcher (``app``: outside a request, e.g. the server that serves it)."""
    return (app or current_app).extensions[SEARCHER]


def get_decided_searcher() -> Searcher:
    """The app's Searcher, its served version's tag rules computed first where some are missing
    (:func:`tagger.decisions.ensure_decided`; a few queries, or nothing for a while after): the
    tag filter, ``-label`` parts and browsing by tag read them."""
    searcher = get_searcher()
    searcher.follow_active_version()
    ensure_decided(get_settings(), searcher.version_id())
    return searcher


def image_or_404(image_id: int) -> Image:
    """The registered image ``image_id`` (its columns, read in a closed session), or a 404."""
    with get_db().session() as s:
        img = s.get(Image, image_id)
    if img is None:
        abort(404, description=f"no image {image_id}")
    return img


def record_or_404(image_id: int) -> dict[str, Any]:
    """The image as the API shows it (:func:`tagger.status.image_record`), or a 404."""
    record = image_record(get_db(), image_id)
    if record is None:
        abort(404, description=f"no image {image_id}")
    return record

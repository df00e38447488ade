"""The Flask frontend: a search page, an image page, thumbnails and a JSON API.

``create_app(settings)`` follows the Flask tutorial's app-factory shape: no module-level app,
one blueprint per feature, shared services kept in the app and read through :mod:`web.context`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flask import Flask

from core.settings import Settings, load_settings


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    from web import context

    settings = settings or load_settings()
    app = Flask(__name__)
    from web.upload import MAX_UPLOAD_BYTES

    # a request body (an uploaded query photo and its form) larger than this is a 413
    app.config.update(JSON_SORT_KEYS=False, MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES + (64 << 10))
    if test_config:
        app.config.update(test_config)
    context.install(app, settings)  # the settings, their database (opened now) and the Searcher

    from tagger.jobs.control import NoSuchJob
    from web import duplicates, errors, security
    from web.browse import bp as browse_bp
    from web.evidence import bp as evidence_bp
    from web.feedback import bp as feedback_bp
    from web.images import bp as images_bp
    from web.jobs import NoBroker
    from web.jobs import bp as jobs_bp
    from web.jobs_page import install as install_jobs_page
    from web.openapi import bp as openapi_bp
    from web.saved import bp as saved_bp
    from web.search import bp as search_bp
    from web.upload import bp as upload_bp

    errors.install(app)  # before the blueprints: their routes use the id converter
    security.install(app, settings)
    app.register_blueprint(search_bp)
    app.register_blueprint(browse_bp)
    app.register_blueprint(duplicates.bp)
    app.register_blueprint(images_bp)
    app.register_blueprint(jobs_bp)
    install_jobs_page(app)  # the jobs page, schedules, model versions, the index
    app.register_blueprint(upload_bp)
    app.register_blueprint(feedback_bp)
    app.register_blueprint(saved_bp)
    app.register_blueprint(evidence_bp)
    app.register_blueprint(openapi_bp)
    app.add_template_filter(_local_time, "datetime")
    app.add_template_filter(_iso_time, "isodate")
    app.add_template_filter(_taken, "taken")

    @app.errorhandler(NoBroker)
    def no_broker(exc: NoBroker):
        return errors.respond(409, str(exc))

    @app.errorhandler(NoSuchJob)
    def no_job(exc: NoSuchJob):
        return errors.respond(404, str(exc))

    return app


def _local_time(mtime: float | None) -> str:
    """A file time as people read it (this machine's time zone, to the minute)."""
    if not mtime:
        return ""
    return datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")


def _taken(iso: str | None) -> str:
    """A shot's time as its camera's clock showed it, with the UTC offset when known
    (``2023-07-14 12:00 (UTC+02:00)``)."""
    if not iso:
        return ""
    when = datetime.fromisoformat(iso)
    shown = when.strftime("%Y-%m-%d %H:%M")
    offset = when.strftime("%z")
    return f"{shown} (UTC{offset[:3]}:{offset[3:]})" if offset else shown


def _iso_time(mtime: float | None) -> str:
    return datetime.fromtimestamp(mtime or 0, tz=timezone.utc).isoformat(timespec="seconds")

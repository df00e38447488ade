"""The Flask frontend: a search page, an image page, thumbnails and a JSON API.

``create_app(settings)`` follows the Flask tutorial's app-factory shape: no module-level app,
one blueprint per feature, shared services kept in ``app.extensions``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from core.settings import Settings, load_settings


def create_app(settings: Settings | None = None, test_config: dict[str, Any] | None = None) -> Flask:
    from core.db import get_database
    from indexer.search import Searcher

    settings = settings or load_settings()
    app = Flask(__name__)
    app.config.update(JSON_SORT_KEYS=False, TAGSCOPE_SETTINGS=settings, MAX_CONTENT_LENGTH=1 << 20)
    if test_config:
        app.config.update(test_config)
    get_database(settings.db_url)  # fail at start-up, not on the first request
    app.extensions["tagscope.searcher"] = Searcher(settings)

    from tagger.job_control import NoSuchJob
    from web import errors, security
    from web.images import bp as images_bp
    from web.jobs import NoBroker
    from web.jobs import bp as jobs_bp
    from web.openapi import bp as openapi_bp
    from web.search import bp as search_bp

    errors.install(app)  # before the blueprints: their routes use the id converter
    security.install(app, settings)
    app.register_blueprint(search_bp)
    app.register_blueprint(images_bp)
    app.register_blueprint(jobs_bp)
    app.register_blueprint(openapi_bp)

    @app.errorhandler(NoBroker)
    def no_broker(exc: NoBroker):
        return errors.respond(409, str(exc))

    @app.errorhandler(NoSuchJob)
    def no_job(exc: NoSuchJob):
        return errors.respond(404, str(exc))

    return app

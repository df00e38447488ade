"""One error shape: under ``/api/`` every error is JSON ``{"error": message, "status": code}``
(400, 401, 404, 405, 409, 413, 414, 500 ...); pages get the error page with the same status.
A database that cannot be reached (a restart, an outage: :mod:`core.outage`) is a 503 saying why.
Ids in URLs are bounded (:class:`IdConverter`), so an id past 64 bits is a 404, not a 500."""

from __future__ import annotations

import logging
from urllib.parse import unquote_to_bytes

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, NotFound, RequestURITooLarge
from werkzeug.routing import BaseConverter

from core.errors import TagscopeError
from core.outage import outage_reason

log = logging.getLogger(__name__)

MAX_URL_CHARS = 4096
RETRY_AFTER_S = 5  # a 503 for a database outage (core.outage): a restart takes seconds
MAX_ID = 2**63 - 1  # the largest SQL BIGINT


class IdConverter(BaseConverter):
    """``<id:name>``: a positive integer that fits a SQL BIGINT."""

    regex = r"\d{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise NotFound()
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))


def respond(status: int, message: str):
    if request.path.startswith("/api/"):
        return jsonify({"error": message, "status": status}), status
    return render_template("error.html", message=message, status=status), status


def install(app: Flask) -> None:
    app.url_map.converters["id"] = IdConverter

    @app.before_request
    def bounded_url() -> None:
        if len(request.full_path) > MAX_URL_CHARS:
            raise RequestURITooLarge(f"the address is longer than {MAX_URL_CHARS} characters: shorten the query")
        try:  # Werkzeug keeps undecodable %-escapes as text ("%FF"): refuse them instead
            unquote_to_bytes(request.query_string.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("the address holds %-escaped bytes that are not UTF-8: type plain text") from None

    @app.errorhandler(TagscopeError)
    def user_error(exc: TagscopeError):
        return respond(400, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return respond(exc.code or 500, exc.description or exc.name)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        reason = outage_reason(exc)
        if reason is not None:  # a database restart or outage: it passes; say so, and when to try again
            log.warning("%s %s: the database is unreachable: %s", request.method, request.path, reason)
            response, status = respond(503, f"the database is unreachable: {reason}; try again in a few seconds")
            return response, status, {"Retry-After": str(RETRY_AFTER_S)}
        log.exception("error answering %s %s", request.method, request.path)
        return respond(500, InternalServerError.description)

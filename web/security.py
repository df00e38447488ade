"""What every request and response passes through: trusted Host names, an access token when the
server listens beyond loopback, security headers, and an access log line.

- Host: only names in :func:`trusted_hosts` (loopback names, plus ``trusted_hosts`` from the
  settings) are answered. A DNS-rebinding page (evil.example resolving to 127.0.0.1) sends its
  own name as Host and gets a 400, so it cannot read thumbnails or paths.
- Token: with ``access_token`` set, every request needs it, as ``Authorization: Bearer TOKEN``,
  or ``?token=TOKEN`` once in a browser (then an HttpOnly, SameSite=Strict cookie carries it).
- Cross-site writes: a POST whose Origin is not one of this server's own origins (the scheme
  and port it was reached on, with a trusted host name), or that the browser marks cross-site or
  same-site, is refused: another site's page, even one on another port of this machine, cannot
  cancel a job through this browser.
- The access log names the path and query with any token's value hidden (``token=***``).
- Headers: a Content-Security-Policy that allows only this origin (no inline script, no
  frames), ``nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hmac
import logging
from urllib.parse import unquote_plus, urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import BadRequest, Forbidden, Unauthorized

from core.settings import Settings

access_log = logging.getLogger("tagscope.access")

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
DEFAULT_PORTS = {"http": 80, "https": 443}
TOKEN_COOKIE = "tagscope_token"
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cross-Origin-Resource-Policy": "same-origin"}


def trusted_hosts(settings: Settings) -> frozenset[str]:
    extra = [h.strip().lower() for h in settings.trusted_hosts.split(",") if h.strip()]
    return frozenset((*LOOPBACK_NAMES, *extra))


def host_name(host_header: str) -> str:
    """The name part of a Host header: ``[::1]:5000`` -> ``::1``, ``Example.org:80`` -> ``example.org``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class UntrustedHost(BadRequest):
    description = ("untrusted Host header: open the page by a trusted name (localhost, 127.0.0.1) or add this "
                   "name to TAGSCOPE_TRUSTED_HOSTS")


class TokenRequired(Unauthorized):
    description = "this server needs its access token: send 'Authorization: Bearer TOKEN' or open ?token=TOKEN once"


class CrossSite(Forbidden):
    description = "a request that changes something must come from this site's own pages (cross-site refused)"


def _cross_site(hosts: frozenset[str]) -> bool:
    """A state-changing request sent by another site's page (CSRF): its Origin is not one of this
    server's own origins, or the browser says it comes from another origin. Scripts and the CLI
    send neither header."""
    origin = request.headers.get("Origin")
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site in ("cross-site", "same-site"):  # same-site: another port or subdomain of this site
        return True
    if origin == "null":  # our Referrer-Policy (no-referrer) makes browsers send "null" on form posts:
        return fetch_site != "same-origin"  # trust only the browser's own same-origin mark then
    return bool(origin) and not _own_origin(origin, hosts)


def origin_parts(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host name, port)`` of an origin or URL, the port filled in from the scheme
    (``http://Localhost`` -> ``("http", "localhost", 80)``); None when it is not http(s) or malformed."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _own_origin(origin: str, hosts: frozenset[str]) -> bool:
    """Whether ``origin`` is one of this server's own: the scheme and port the request reached it
    on (its Host header), and any trusted host name (all name this server)."""
    given = origin_parts(origin)
    own = origin_parts(f"{request.scheme}://{request.headers.get('Host', '')}")
    return given is not None and own is not None and given[1] in hosts and (given[0], given[2]) == (own[0], own[2])


def logged_path() -> str:
    """The request's path and query as the access log writes them: a ``token`` parameter's value
    (the access token, or a wrong guess at it) is never written, only ``token=***``."""
    query = request.query_string.decode("utf-8", "replace")
    if not query:
        return request.path
    return request.path + "?" + "&".join(_hide_token(part) for part in query.split("&"))


def _hide_token(part: str) -> str:
    name = part.split("=", 1)[0]
    return f"{name}=***" if unquote_plus(name).strip().lower() == "token" else part


def install(app: Flask, settings: Settings) -> None:
    hosts = trusted_hosts(settings)
    token = settings.access_token

    @app.before_request
    def check_request() -> None:
        if host_name(request.headers.get("Host", "")) not in hosts:
            raise UntrustedHost()
        if token and not _has_token(token):
            raise TokenRequired()
        if request.method not in ("GET", "HEAD", "OPTIONS") and _cross_site(hosts):
            raise CrossSite()

    @app.after_request
    def finish(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if token and request.args.get("token") and _same(request.args["token"], token):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        access_log.info("%s %s %s", request.method, logged_path(), response.status_code)
        return response


def _same(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode(), token.encode())


def _has_token(token: str) -> bool:
    auth = request.headers.get("Authorization", "")
    given = auth[7:] if auth.startswith("Bearer ") else request.args.get("token") or request.cookies.get(TOKEN_COOKIE)
    return bool(given) and _same(given, token)

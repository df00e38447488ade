"""`tagscope search` through a running `tagscope serve`: answers in a fraction of a second.

Searching in-process costs seconds before the first result (importing torch and open_clip,
loading the model, reading the index); a server has all of that in memory and caches query
embeddings. `tagscope serve` announces itself in ``<home>/server.json`` (its URL and pid) and
removes the file when it stops; `tagscope search` on the same home asks it over HTTP, with the
standard library only, and falls back to searching in-process when no server answers. A server
with an access token (``TAGSCOPE_ACCESS_TOKEN``, every LAN setup) gets this home's configured token
as ``Authorization: Bearer TOKEN`` (a header: never in the URL, so never in a log).
"""

from __future__ import annotations

import atexit
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_bytes
from core.errors import TagscopeError
from core.settings import Settings

ANNOUNCE_FILE = "server.json"
TIMEOUT_S = 10.0


def announce_file(settings: Settings) -> Path:
    return settings.home / ANNOUNCE_FILE


def announce(settings: Settings, host: str, port: int, model_spec: str, pid: int | None = None) -> Path:
    """Write ``server.json`` for this process (or the server's process ``pid``); it is removed at
    exit (if still ours)."""
    client_host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in client_host and not client_host.startswith("["):
        client_host = f"[{client_host}]"
    path = announce_file(settings)
    pid = os.getpid() if pid is None else pid
    record = {"url": f"http://{client_host}:{port}", "pid": pid, "database": settings.db_url,
              "model": model_spec, "explicit_model": str(settings.model) if settings.model else None}
    atomic_write_bytes(path, json.dumps(record).encode())
    if pid == os.getpid():
        atexit.register(_withdraw, path, pid)
    return path


def _withdraw(path: Path, pid: int) -> None:
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (OSError, ValueError):
        pass


def running_server(settings: Settings) -> str | None:
    """The URL of a live server on this home's database that searches with the model asked
    for (a server started without a model follows the collection's: it serves a search without
    one), or None."""
    try:
        record = json.loads(announce_file(settings).read_text())
        pid, url = int(record["pid"]), str(record["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("database") != settings.db_url:
        return None
    wanted = str(settings.model) if settings.model else None
    if wanted != record.get("explicit_model") and wanted != record.get("model"):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return url


def remote_search(url: str, text: str | None, k: int, min_score: float | None, filters: dict[str, str] | None = None,
                  token: str = "", timeout: float = TIMEOUT_S) -> list[dict[str, Any]] | None:
    """The server's hits (``[{image_id, path, score}]``), or None when it does not answer (the
    caller searches in-process). ``token``: the access token, sent as a Bearer header. A 4xx answer
    is the user's error: raised with the server's words (a 401: which setting holds the token)."""
    params = {**({"q": text} if text is not None else {}), "k": k,
              **({"min_score": min_score} if min_score is not None else {}), **(filters or {})}
    headers = {"Accept": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(f"{url}/api/search?{urllib.parse.urlencode(params)}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())["results"]
    except urllib.error.HTTPError as exc:
        with exc:  # its connection, closed
            if exc.code == 401:
                given = "refused the configured access token" if token else "needs its access token"
                raise TagscopeError(f"the server at {url} {given}: set TAGSCOPE_ACCESS_TOKEN (or access_token in "
                                    "tagscope.toml) to the server's") from None
            if 400 <= exc.code < 500:
                raise TagscopeError(_error_text(exc)) from None
            return None
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return f"the server refused the search (HTTP {exc.code})"

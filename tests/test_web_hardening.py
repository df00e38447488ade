"""The web app under hostile input: bounded ids, one JSON error shape under /api/, security
headers, trusted Host names, an access token beyond loopback, no cross-site writes, no secrets in
the status API; and the real server (waitress) under concurrent first thumbnail loads."""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.settings import load_settings
from web import create_app

from .commands import run_cli
from .databases import copy_home
from .servers import start_server, stop_process

BIG = "9223372036854775808"  # 2**63: past SQL BIGINT


def client_for(home, **settings):
    app = create_app(load_settings(environ={}, home=str(home), model="synthetic", **settings), {"TESTING": True})
    return app.test_client()


@pytest.fixture(scope="module")
def client(tagged_home):
    return client_for(tagged_home)


@pytest.mark.parametrize("path", [f"/api/images/{BIG}", f"/image/{BIG}", f"/thumb/{BIG}", "/api/images/0",
                                  f"/api/jobs/{BIG}", "/thumb/" + "9" * 40])
def test_ids_past_64_bits_are_not_found_not_a_server_error(client, path):
    resp = client.get(path)
    assert resp.status_code == 404
    if path.startswith("/api/"):
        assert resp.get_json()["status"] == 404


@pytest.mark.parametrize("path", ["/api/images/999999", "/image/999999", "/image/999999/full", "/thumb/999999",
                                  "/api/images/999999/evidence?label=red", "/image/999999/evidence.png?label=red"])
def test_an_image_that_is_not_registered_is_a_404_that_names_it(client, path):
    """Every route of one image looks it up the same way (web.context): a 404 saying which id."""
    resp = client.get(path)
    assert resp.status_code == 404 and "no image 999999" in resp.get_data(as_text=True)


@pytest.mark.parametrize("method, path, status", [("post", "/api/search?q=x", 405), ("get", "/api/nothing", 404),
                                                  ("get", "/api/search?q=" + "x" * 5000, 414),
                                                  ("get", "/api/search?q=caf%FF", 400),
                                                  ("get", "/api/search?q=%00x", 400),
                                                  ("get", "/api/search?q=%E2%80%8B%E2%80%8C", 400)])
def test_every_api_error_is_json_of_one_shape(client, method, path, status):
    resp = getattr(client, method)(path)
    assert resp.status_code == status and resp.is_json, resp.get_data(as_text=True)[:200]
    body = resp.get_json()
    assert set(body) == {"error", "status"} and body["status"] == status and body["error"]


def test_an_unexpected_error_is_a_json_500_under_the_api(tagged_home, monkeypatch):
    client = client_for(tagged_home)
    from web import search

    monkeypatch.setattr(search, "collection_status", lambda *a, **k: 1 / 0)
    resp = client.get("/api/status")
    assert resp.status_code == 500 and resp.get_json() == {"error": resp.get_json()["error"], "status": 500}
    assert "ZeroDivision" not in resp.get_data(as_text=True)  # no internals leak


def test_validation_errors_on_the_page_are_400(client):
    resp = client.get("/?q=%E2%80%8B")
    assert resp.status_code == 400 and "empty query" in resp.get_data(as_text=True)
    assert client.get("/?q=red+circle").status_code == 200


def test_every_response_carries_the_security_headers(client):
    for path in ("/", "/?q=red", "/api/search?q=red", "/api/nothing", "/static/style.css", "/thumb/1"):
        resp = client.get(path)
        headers = resp.headers
        resp.close()  # the static file's handle
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"


def test_only_trusted_host_names_are_answered(tagged_home):
    client = client_for(tagged_home)
    for host in ("localhost:5000", "127.0.0.1", "[::1]:5000"):
        assert client.get("/api/status", headers={"Host": host}).status_code == 200
    rebinding = client.get("/thumb/1", headers={"Host": "evil.example:5000"})
    assert rebinding.status_code == 400 and rebinding.mimetype != "image/jpeg"
    assert "TAGSCOPE_TRUSTED_HOSTS" in client.get("/api/status", headers={"Host": "evil.example"}).get_json()["error"]
    configured = client_for(tagged_home, trusted_hosts="photos.lan, nas.local")
    assert configured.get("/api/status", headers={"Host": "photos.lan:8080"}).status_code == 200


def test_an_access_token_guards_every_request(tagged_home):
    token = "s3cret-token-of-enough-length"
    client = client_for(tagged_home, access_token=token)
    assert client.get("/api/status").status_code == 401
    assert client.get("/api/status", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/status", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    first = client.get(f"/?token={token}")  # a browser opens the link once; the cookie carries the token
    assert first.status_code == 200 and "HttpOnly" in first.headers["Set-Cookie"]
    assert client.get("/api/status").status_code == 200


def test_writes_from_another_site_are_refused(client):
    resp = client.post("/api/jobs/1/cancel", headers={"Origin": "http://evil.example"})
    assert resp.status_code == 403 and "cross-site" in resp.get_json()["error"]
    resp = client.post("/api/jobs/1/cancel", headers={"Sec-Fetch-Site": "cross-site"})
    assert resp.status_code == 403
    own = {"Host": "127.0.0.1:5000"}  # as a browser sends it: the port the server was reached on
    assert client.post("/api/jobs/1/cancel", headers={**own, "Origin": "http://127.0.0.1:5000"}).status_code != 403
    # Origin "null" (a form post under Referrer-Policy no-referrer, or a sandboxed frame): only the
    # browser's own same-origin mark lets it through
    null = {"Origin": "null"}
    assert client.post("/api/jobs/1/cancel", headers=null).status_code == 403
    assert client.post("/api/jobs/1/cancel", headers={**null, "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post("/api/jobs/1/cancel", headers={**null, "Sec-Fetch-Site": "same-origin"}).status_code != 403


@pytest.mark.parametrize("host, origin, refused", [
    ("localhost:5000", "http://localhost:8080", True),  # another server on this machine: another origin
    ("localhost:5000", "http://127.0.0.1:8080", True),
    ("localhost:5000", "https://localhost:5000", True),  # another scheme
    ("localhost:5000", "http://localhost", True),  # port 80
    ("localhost:5000", "http://evil.example:5000", True),
    ("localhost:5000", "http://localhost:5000:99", True),  # malformed
    ("localhost:5000", "ftp://localhost:5000", True),
    ("localhost:5000", "http://localhost:5000", False),
    ("localhost:5000", "http://LOCALHOST:5000", False),
    ("localhost:5000", "http://127.0.0.1:5000", False),  # the same server by another trusted name
    ("[::1]:5000", "http://[::1]:5000", False),
    ("localhost", "http://localhost:80", False),  # default ports
    ("localhost:80", "http://localhost", False),
])
def test_a_write_must_come_from_the_servers_own_origin(client, host, origin, refused):
    resp = client.post("/api/jobs/1/cancel", headers={"Host": host, "Origin": origin})
    assert (resp.status_code == 403) is refused, (resp.status_code, resp.get_data(as_text=True)[:200])
    # the browser's own mark for a page on another port of this host: same-site, not same-origin
    assert client.post("/api/jobs/1/cancel", headers={"Host": host, "Sec-Fetch-Site": "same-site"}).status_code == 403


def test_https_origins_match_a_server_reached_over_https(tagged_home):
    client = client_for(tagged_home, trusted_hosts="photos.lan")
    https = {"Host": "photos.lan", "Origin": "https://photos.lan"}
    assert client.post("/api/jobs/1/cancel", headers=https, base_url="https://photos.lan").status_code != 403
    assert client.post("/api/jobs/1/cancel", headers=https, base_url="http://photos.lan").status_code == 403


def test_the_access_log_never_holds_the_token(tagged_home, caplog):
    token = "s3cret-token-of-enough-length"
    client = client_for(tagged_home, access_token=token)
    with caplog.at_level(logging.INFO, logger="tagscope.access"):
        assert client.get(f"/api/search?q=red&token={token}&k=3").status_code == 200
        assert client.get("/api/status?token=a-wrong-guess-at-it").status_code == 401  # a near miss is a secret too
        assert client.get(f"/api/status?tok%65n={token}").status_code == 200  # the name as Werkzeug decodes it
        client.get("/api/status?q=a&token=")
    lines = [r.getMessage() for r in caplog.records if r.name == "tagscope.access"]
    assert lines == ["GET /api/search?q=red&token=***&k=3 200", "GET /api/status?token=*** 401",
                     "GET /api/status?tok%65n=*** 200", "GET /api/status?q=a&token=*** 200"], lines
    assert token not in caplog.text and "wrong-guess" not in caplog.text


def test_the_status_api_holds_no_secrets(client):
    body = client.get("/api/status").get_data(as_text=True)
    assert "sqlite" not in body and "tagscope.sqlite" not in body and ".faiss" not in body


def test_serving_beyond_loopback_needs_allow_remote_and_a_token(tmp_path):
    refused = run_cli("serve", "--host", "0.0.0.0", home=tmp_path / "h", check=False)
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr
    no_token = run_cli("serve", "--host", "0.0.0.0", "--allow-remote", home=tmp_path / "h", check=False)
    assert no_token.returncode == 2 and "TAGSCOPE_ACCESS_TOKEN" in no_token.stderr


def test_labels_with_no_name_or_too_long_get_one_line(tmp_path):
    for name, fix in (("", "empty label"), ("x" * 5000, "label too long")):
        proc = run_cli("labels", "add", name, home=tmp_path / "h", check=False)
        assert proc.returncode == 2 and proc.stderr.startswith(f"error: {fix}"), proc.stderr
        assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


@pytest.mark.worker
@pytest.mark.slow
def test_the_real_server_answers_concurrent_first_thumbnail_loads(tagged_home, tmp_path):
    home = tmp_path / "home"
    copy_home(tagged_home, home, "thumbs")
    proc, url = start_server(home)

    def get(path):
        try:
            with urllib.request.urlopen(url + path, timeout=60) as resp:
                return resp.status, resp.headers.get("Server"), resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Server"), exc.headers.get_content_type()

    try:
        with ThreadPoolExecutor(16) as pool:  # every request is the first for its thumbnail, 8 at a time each
            results = list(pool.map(get, [f"/thumb/{1 + i % 15}" for i in range(120)]))
        assert [r[0] for r in results] == [200] * 120
        assert {r[1] for r in results} == {"tagscope"}  # waitress, not the development server
        assert get(f"/api/images/{BIG}")[0] == 404 and get(f"/api/images/{BIG}")[2] == "application/json"
    finally:
        stop_process(proc)
    assert not list((home / "thumbs").glob("*.tmp"))

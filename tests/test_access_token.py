"""A real `tagscope serve` with an access token, as every LAN setup runs it: the token never
reaches its log, a page on another port of the same host cannot make it change anything, and
`tagscope search` / `tagscope saved run` on the same home go through it with the configured token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from .commands import run_cli
from .databases import copy_home
from .servers import start_server, stop_process

TOKEN = "s3cret-token-of-enough-length-0123"


def call(url: str, method: str = "GET", **headers: str) -> int:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.worker
@pytest.mark.slow
def test_a_server_with_a_token_keeps_it_out_of_its_log_refuses_other_origins_and_answers_the_cli(
        tagged_home, tmp_path):
    home = tmp_path / "home"
    copy_home(tagged_home, home)  # never shutil.copytree: see copy_home
    log = tmp_path / "serve.log"
    proc, base = start_server(home, log=log, TAGSCOPE_ACCESS_TOKEN=TOKEN)
    port = base.rsplit(":", 1)[1]
    own = {"Host": f"localhost:{port}"}  # as a browser on localhost:PORT
    bearer = {**own, "Authorization": f"Bearer {TOKEN}"}
    try:
        # The token in a link, opened once in a browser; a wrong guess at it is a secret too.
        assert call(f"{base}/?token={TOKEN}", **own) == 200
        assert call(f"{base}/api/search?q=red+circle&k=3&token={TOKEN}", **own) == 200
        assert call(f"{base}/api/status?token=a-wrong-guess-at-it", **own) == 401

        # A page served on localhost:8080 posts to this server on localhost:PORT: refused, its
        # cookie or token notwithstanding; the server's own pages (by any trusted name) pass.
        cancel = f"{base}/api/jobs/999999/cancel"
        assert call(cancel, "POST", **bearer, Origin="http://localhost:8080") == 403
        assert call(cancel, "POST", **bearer, Origin=f"https://localhost:{port}") == 403
        for origin in (f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
            assert call(cancel, "POST", **bearer, Origin=origin) == 404  # allowed through: there is no such job

        # The command line on this home sends the configured token: the server answers it.
        before = log.read_text()
        served = json.loads(run_cli("search", "red circle", "-k", "7", "--json", home=home,
                                    TAGSCOPE_ACCESS_TOKEN=TOKEN).stdout)["results"]
        assert len(served) == 7 and "GET /api/search?q=red+circle&k=7 200" in log.read_text()[len(before):]
        run_cli("saved", "add", "cyan", "cyan thing", "--media", "photo", home=home)
        before = log.read_text()
        ran = json.loads(run_cli("saved", "run", "cyan", "-k", "5", "--json", home=home,
                                 TAGSCOPE_ACCESS_TOKEN=TOKEN).stdout)["results"]
        assert len(ran) == 5 and "GET /api/search?q=cyan+thing&k=5&media=photo 200" in log.read_text()[len(before):]
        # Without the token (or with another one): one line naming the setting.
        for env in ({}, {"TAGSCOPE_ACCESS_TOKEN": "another-token-of-enough-length"}):
            refused = run_cli("search", "red circle", home=home, check=False, **env)
            line = refused.stderr
            assert refused.returncode == 2 and line.startswith(f"error: the server at {base} "), line
            assert "TAGSCOPE_ACCESS_TOKEN" in line and line.count("\n") == 1, line
    finally:
        stop_process(proc)
    written = log.read_text()
    assert "GET /?token=*** 200" in written and "GET /api/search?q=red+circle&k=3&token=*** 200" in written
    assert "GET /api/status?token=*** 401" in written, written
    assert TOKEN not in written and "wrong-guess" not in written and "another-token" not in written
    # what the server answered is what this process finds
    in_process = json.loads(run_cli("search", "red circle", "-k", "7", "--json", home=home).stdout)["results"]
    assert [h["image_id"] for h in in_process] == [h["image_id"] for h in served]

"""Saved searches: a named query with its filters and sort, stored in SQL (SQLite and PostgreSQL),
checked as a search checks them, run by ``tagscope saved run`` exactly as ``tagscope search`` runs
(through a running server when there is one), served by ``/api/saved`` under the same token and
cross-site rules as every write, and listed on a page a browser saves, runs and removes them from."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_schema_validator import OAS30Validator, validate
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import MultiDict

from core.errors import TagscopeError
from core.schema import SavedSearch, utcnow
from core.settings import load_settings
from indexer.search import saved as store
from indexer.search.filters import MEDIA_KINDS, SORTS
from migrations import get_database
from web import create_app

from .commands import run_cli
from .photos import read_labels_jsonl
from .servers import serving
from .test_browser import browser, loaded, shots  # noqa: F401 - fixtures, shared with the browser tests
from .test_light_commands import imported_heavy_modules
from .waiting import wait_until

# -- storage and its checks, on SQLite and PostgreSQL ----------------------------------------


def test_saved_searches_round_trip_with_their_filters_and_sort(home_env):
    _, _, url = home_env
    db = get_database(url)
    assert store.list_saved(db) == []
    first = store.add(db, "  Summer beach ", " blue   star ", {"taken": "2023-07", "media": "PHOTO", "folder": "/p/",
                                                             "place": "", "camera": None})
    assert (first.name, first.query, first.sort) == ("Summer beach", "blue star", "relevance")
    assert first.filters == {"folder": "/p", "taken": "2023-07", "media": "photo"}  # as a search reads them
    assert first.url_args() == {"q": "blue star", "folder": "/p", "taken": "2023-07", "media": "photo"}
    store.add(db, "another", "red circle", sort="newest")
    store.add(db, "Zebra", "striped background", {"tag": "striped background"}, sort="OLDEST")
    assert [s.name for s in store.list_saved(db)] == ["another", "Summer beach", "Zebra"]  # by name, case ignored
    got = store.get(db, "Summer beach")
    assert got == first and got.created_at == got.updated_at and got.created_at.endswith("+00:00")
    assert store.get(db, "another").url_args() == {"q": "red circle", "sort": "newest"}
    assert store.get(db, "Zebra").sort == "oldest"

    with pytest.raises(store.NameTaken, match="--replace"):
        store.add(db, "Summer beach", "anything")
    wait_until(lambda: utcnow() > datetime.fromisoformat(first.created_at), every=0.001,
               what="the clock past the first save")  # so that its update shows in updated_at
    replaced, created = store.save(db, "Summer beach", "red circle", {"camera": "Canon"}, replace=True)
    assert not created and replaced.id == first.id and replaced.filters == {"camera": "Canon"}
    assert replaced.updated_at > replaced.created_at == first.created_at
    assert store.replace(db, "fresh", "cyan thing").name == "fresh"  # replace also creates

    assert store.remove(db, "Summer beach").query == "red circle"
    with pytest.raises(store.NoSuchSaved, match="no saved search named 'Summer beach': `tagscope saved list`"):
        store.get(db, "Summer beach")
    with pytest.raises(store.NoSuchSaved):
        store.remove(db, "Summer beach")
    assert [s.name for s in store.list_saved(db)] == ["another", "fresh", "Zebra"]


def test_the_database_itself_keeps_names_unique(home_env):
    _, _, url = home_env
    db = get_database(url)
    store.add(db, "twice", "red circle")
    with pytest.raises(IntegrityError):
        with db.session() as s:
            s.add(SavedSearch(name="twice", query="blue star", filters={}, sort="relevance"))


@pytest.mark.parametrize("name, query, filters, sort, words", [
    ("", "red", {}, None, "needs a name"),
    ("x" * 101, "red", {}, None, "keep it to 100"),
    ("tab\there", "red", {}, None, "control character"),
    ("ok", "", {}, None, "empty query"),
    ("ok", "\u200b ", {}, None, "empty query"),
    ("ok", "x" * 301, {}, None, "query too long"),
    ("ok", "a\x00b", {}, None, "NUL"),
    ("ok", "dog -", {}, None, "excludes the text that follows it"),  # the query grammar
    ("ok", "red", {"colour": "red"}, None, "unknown filter 'colour'"),
    ("ok", "red", {"taken": "2023-13"}, None, "not a date on the calendar"),
    ("ok", "red", {"media": "film"}, None, "media must be one of photo, raw, video"),
    ("ok", "red", {"place": 3}, None, "must be text"),
    ("ok", "red", {}, "random", "sort must be one of relevance, newest, oldest"),
])
def test_what_a_search_would_refuse_is_not_saved(home_env, name, query, filters, sort, words):
    _, _, url = home_env
    db = get_database(url)
    with pytest.raises(TagscopeError, match=words) as caught:
        store.add(db, name, query, filters, sort)
    assert "\n" not in str(caught.value)
    assert store.list_saved(db) == []


def test_the_command_line_adds_lists_and_removes(home_env):
    home, env, _ = home_env
    out = run_cli("saved", "add", "stars", "blue star", "--media", "photo", "--taken", "2023..2024", "--sort", "newest",
                  home=home, **env)
    assert "saved 'stars'" in out.stdout
    listed = json.loads(run_cli("saved", "list", "--json", home=home, **env).stdout)
    assert [(s["name"], s["q"], s["filters"]["media"], s["filters"]["taken"], s["sort"]) for s in listed] == \
        [("stars", "blue star", "photo", "2023..2024", "newest")]
    text = run_cli("saved", "list", home=home, **env).stdout
    assert text.startswith("stars\t\"blue star\"") and "--sort newest" in text
    taken = run_cli("saved", "add", "stars", "red circle", home=home, check=False, **env)
    assert taken.returncode == 2 and taken.stderr.strip().count("\n") == 0 and "--replace" in taken.stderr
    assert "replaced 'stars'" in run_cli("saved", "add", "stars", "red circle", "--replace", home=home, **env).stdout
    bad = run_cli("saved", "add", "x", "red", "--media", "film", home=home, check=False, **env)
    assert bad.returncode == 2 and "media must be one of" in bad.stderr
    assert run_cli("saved", "remove", "stars", home=home, **env).stdout.strip() == "removed 'stars'"
    gone = run_cli("saved", "remove", "stars", home=home, check=False, **env)
    assert gone.returncode == 2 and "`tagscope saved list` shows them" in gone.stderr
    assert json.loads(run_cli("saved", "list", "--json", home=home, **env).stdout) == []


@pytest.mark.parametrize("option", [("--media", "film"), ("--sort", "random")])
def test_saved_add_refuses_a_bad_filter_or_sort_as_search_does(home_env, option):
    """One set of filter options (tagscope/filter_options.py): `saved add` and `search` refuse a bad
    value with the same one line and exit status, and nothing is saved."""
    home, env, _ = home_env
    searched = run_cli("search", "red circle", *option, home=home, check=False, **env)
    saved = run_cli("saved", "add", "x", "red circle", *option, home=home, check=False, **env)
    assert (searched.returncode, searched.stderr) == (saved.returncode, saved.stderr)
    assert saved.returncode == 2 and saved.stderr.strip().count("\n") == 0
    accepted = MEDIA_KINDS if option[0] == "--media" else SORTS
    assert f"must be one of {', '.join(accepted)}, got {option[1]!r}" in saved.stderr
    assert json.loads(run_cli("saved", "list", "--json", home=home, **env).stdout) == []


@pytest.mark.parametrize("command", [
    ["saved", "list"], ["saved", "list", "--json"], ["saved", "remove", "light"],
    ["saved", "add", "heavy", "red circle"]])
def test_the_sql_only_commands_import_no_torch(tmp_path, command):
    home = tmp_path / "home"
    store.add(get_database(f"sqlite:///{home.resolve()}/tagscope.sqlite"), "light", "red circle")
    heavy, out = imported_heavy_modules(home, *command)
    assert out.strip() and heavy == [], f"tagscope {' '.join(command)} imported {heavy}"


# -- running one, as `tagscope search` runs ----------------------------------------------------


def test_running_a_saved_search_is_running_the_search(tagged_home, synthetic_photos):
    truth = read_labels_jsonl(synthetic_photos)
    folder = str(synthetic_photos)
    try:
        run_cli("saved", "add", "stripes", "striped background", "--folder", folder, "--media", "photo",
                home=tagged_home)
        ran = json.loads(run_cli("saved", "run", "stripes", "-k", "12", "--json", home=tagged_home).stdout)
        direct = json.loads(run_cli("search", "striped background", "-k", "12", "--folder", folder, "--media",
                                    "photo", "--json", home=tagged_home).stdout)
        assert ran == direct and len(ran["results"]) == 12
        matches = [Path(h["path"]).name for h in ran["results"] if h["match"]]
        assert len(matches) >= 5 and sum("striped background" in truth[n] for n in matches) >= 0.9 * len(matches)
        printed = run_cli("saved", "run", "stripes", "-k", "3", home=tagged_home).stdout.splitlines()
        assert len(printed) == 3 and printed[0].split()[-1] == ran["results"][0]["path"]
        # the filters are applied: a folder with no photos leaves nothing
        run_cli("saved", "add", "stripes", "striped background", "--folder", folder + "-nowhere", "--replace",
                home=tagged_home)
        assert json.loads(run_cli("saved", "run", "stripes", "--json", home=tagged_home).stdout)["results"] == []
    finally:
        run_cli("saved", "remove", "stripes", home=tagged_home, check=False)
    missing = run_cli("saved", "run", "stripes", home=tagged_home, check=False)
    assert missing.returncode == 2 and "no saved search named 'stripes'" in missing.stderr


# -- the API and the page's forms ------------------------------------------------------------


def client_for(home: Path, url: str, **settings):
    app = create_app(load_settings(environ={}, home=str(home), model="synthetic", database_url=url, **settings),
                     {"TESTING": True})
    return app, app.test_client()


def check(app, body, ref: str) -> None:
    doc = app.test_client().get("/api/openapi.json").get_json()
    validate(body, {"$ref": f"#/components/schemas/{ref}", "components": doc["components"]}, cls=OAS30Validator)


def test_the_api_saves_lists_replaces_and_removes(home_env):
    home, _, url = home_env
    app, client = client_for(home, url)
    empty = client.get("/api/saved")
    assert empty.status_code == 200 and empty.get_json() == {"saved": []}
    check(app, empty.get_json(), "SavedSearches")

    resp = client.post("/api/saved", json={"name": "a/b c", "q": "blue star", "taken": "2023-07", "media": "photo"})
    assert resp.status_code == 201, resp.get_json()
    body = resp.get_json()
    check(app, body, "SavedSearch")
    assert body["name"] == "a/b c" and body["sort"] == "relevance" and body["filters"]["taken"] == "2023-07"
    link = urlsplit(body["url"])
    assert link.path == "/" and dict(parse_qsl(link.query)) == {"q": "blue star", "taken": "2023-07", "media": "photo"}

    taken = client.post("/api/saved", json={"name": "a/b c", "q": "red circle"})
    assert taken.status_code == 409 and '"replace": true' in taken.get_json()["error"]
    check(app, taken.get_json(), "Error")
    replaced = client.post("/api/saved", json={"name": "a/b c", "q": "red circle", "sort": "oldest", "replace": True})
    assert replaced.status_code == 200 and replaced.get_json()["filters"]["taken"] is None
    assert dict(parse_qsl(urlsplit(replaced.get_json()["url"]).query)) == {"q": "red circle", "sort": "oldest"}
    listed = client.get("/api/saved").get_json()
    check(app, listed, "SavedSearches")
    assert [s["name"] for s in listed["saved"]] == ["a/b c"]

    for bad, words in [({"name": "x", "q": "red", "colour": "red"}, "unknown field 'colour'"),
                       ({"name": "x", "q": "red", "sort": "best"}, "sort must be one of"),
                       ({"name": "x", "q": "red", "replace": "yes"}, "replace must be true or false"),
                       ({"name": "x", "q": "red", "taken": "July"}, "taken must be"),
                       ({"name": "x"}, "query text"), ([1, 2], "send JSON"),
                       ({"name": 5, "q": "red"}, "name must be text"),
                       ({"name": "x", "q": "red", "sort": 1}, "sort must be text")]:
        resp = client.post("/api/saved", json=bad)
        assert resp.status_code == 400 and words in resp.get_json()["error"], (bad, resp.get_json())
        check(app, resp.get_json(), "Error")

    removed = client.delete("/api/saved/a%2Fb%20c")
    assert removed.status_code == 200 and removed.get_json()["q"] == "red circle"
    again = client.delete("/api/saved/a%2Fb%20c")
    assert again.status_code == 404 and "GET /api/saved" in again.get_json()["error"]
    assert client.get("/api/saved").get_json() == {"saved": []}


def test_writes_from_other_sites_are_refused_and_a_token_guards_them(tagged_home, tmp_path):
    url = f"sqlite:///{tmp_path}/t.sqlite"
    _, client = client_for(tagged_home, url)
    evil = client.post("/api/saved", json={"name": "x", "q": "red"}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.get_json()["error"]
    form = client.post("/saved", data={"name": "x", "q": "red"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert form.status_code == 403
    assert client.post("/saved", data={"name": "x", "q": "red"}, headers={"Origin": "null"}).status_code == 403
    store.add(get_database(url), "kept", "red circle")
    assert client.delete("/api/saved/kept", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.post("/saved/remove", data={"name": "kept"},
                       headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert [s.name for s in store.list_saved(get_database(url))] == ["kept"]  # nothing changed
    ok = client.post("/api/saved", json={"name": "x", "q": "red"},
                     headers={"Origin": "http://127.0.0.1:5000", "Host": "127.0.0.1:5000"})  # the server's own page
    assert ok.status_code == 201

    token = "s3cret-token-of-enough-length"
    _, guarded = client_for(tagged_home, url, access_token=token)
    assert guarded.get("/api/saved").status_code == 401
    assert guarded.post("/api/saved", json={"name": "y", "q": "red"}).status_code == 401
    assert guarded.delete("/api/saved/kept").status_code == 401
    auth = {"Authorization": f"Bearer {token}"}
    assert guarded.post("/api/saved", json={"name": "y", "q": "red"}, headers=auth).status_code == 201
    assert guarded.delete("/api/saved/kept", headers=auth).status_code == 200
    assert [s.name for s in store.list_saved(get_database(url))] == ["x", "y"]


def test_the_page_forms_save_then_go_to_the_search_and_remove(tagged_home, tmp_path):
    url = f"sqlite:///{tmp_path}/t.sqlite"
    _, client = client_for(tagged_home, url)
    page = client.get("/saved?q=blue+star&media=photo&page=2")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="save-search"' in html and 'id="no-saved"' in html
    assert 'name="media" value="photo"' in html and 'name="page"' not in html
    assert 'id="save-search"' not in client.get("/saved").get_data(as_text=True)  # nothing to save

    saved = client.post("/saved", data={"name": "Stars", "q": "blue star", "media": "photo"})
    assert saved.status_code == 303
    target = urlsplit(saved.headers["Location"])
    assert target.path == "/" and dict(parse_qsl(target.query)) == {"q": "blue star", "media": "photo"}
    html = client.get("/saved").get_data(as_text=True)
    assert 'class="saved-link" href="/?q=blue+star&amp;media=photo">Stars</a>' in html
    taken = client.post("/saved", data={"name": "Stars", "q": "red"})
    assert taken.status_code == 409 and "pick another name" in taken.get_data(as_text=True)

    removed = client.post("/saved/remove", data={"name": "Stars"})
    assert removed.status_code == 303 and urlsplit(removed.headers["Location"]).path == "/saved"
    assert 'id="no-saved"' in client.get("/saved").get_data(as_text=True)
    assert client.post("/saved/remove", data={"name": "Stars"}).status_code == 404


def test_the_partial_reads_the_search_page_s_own_arguments(tagged_home, tmp_path):
    """What the search page gets with ``{% include "_saved.html" %}`` and ``saved=saved_for_page()``:
    the list, and a save form holding the page's search (its text and filters, not its page)."""
    from flask import render_template_string

    from web.params import SearchArgs
    from web.saved import saved_for_page

    url = f"sqlite:///{tmp_path}/t.sqlite"
    app, _ = client_for(tagged_home, url)
    store.add(get_database(url), "Zebra stripes", "striped background", {"taken": "2023"})
    with app.test_request_context("/?q=red+circle&place=Spain&page=3"):
        from flask import request

        args = SearchArgs.parse(request.args)
        html = render_template_string('{% include "_saved.html" %}', saved=saved_for_page(), args=args)
        assert 'href="/?q=striped+background&amp;taken=2023">Zebra stripes</a>' in html
        assert 'name="q" value="red circle"' in html and 'name="place" value="Spain"' in html
        assert 'name="page"' not in html and "saved-remove" not in html  # no remove buttons on the search page
        like = SearchArgs.parse(MultiDict({"like": "5"}))  # a photo search cannot be saved: no form
        assert 'id="save-search"' not in render_template_string('{% include "_saved.html" %}', saved=[], args=like)
        explicit = render_template_string('{% include "_saved.html" %}', saved=[], current={"q": "cyan thing"})
        assert 'name="q" value="cyan thing"' in explicit and 'id="no-saved"' in explicit


# -- with a running server: forwarding, and a real browser -------------------------------------


@pytest.fixture(scope="module")
def server(tagged_home):
    yield from serving(tagged_home)


@pytest.mark.browser
@pytest.mark.slow
def test_a_saved_search_run_from_the_shell_asks_the_running_server(server, tagged_home, synthetic_photos):
    in_process = None
    try:
        run_cli("saved", "add", "cyan", "cyan thing", "--media", "photo", home=tagged_home)
        log = tagged_home / "serve.log"
        before = log.read_text()
        ran = json.loads(run_cli("saved", "run", "cyan", "-k", "7", "--json", home=tagged_home).stdout)
        asked = log.read_text()[len(before):]
        assert "GET /api/search?q=cyan+thing&k=7&media=photo 200" in asked, asked
        in_process = json.loads(run_cli("search", "cyan thing", "-k", "7", "--media", "photo", "--json",
                                        "--model", "synthetic", home=tagged_home).stdout)
    finally:
        run_cli("saved", "remove", "cyan", home=tagged_home, check=False)
    assert [h["image_id"] for h in ran["results"]] == [h["image_id"] for h in in_process["results"]]


@pytest.mark.browser
@pytest.mark.slow
def test_save_a_search_see_it_listed_run_it_and_remove_it(server, browser, synthetic_photos, shots):  # noqa: F811
    truth = read_labels_jsonl(synthetic_photos)
    page = browser.new_page()
    page.goto(server + "/saved")
    assert page.locator("#no-saved").is_visible() and page.locator("#save-search").count() == 0, page.content()
    page.goto(server + "/saved?q=striped+background&media=photo")
    page.fill("#saved-name", "Stripes")
    page.click("#save-search-button")
    loaded(page, "#matches img")  # back at the search it saved, with its results
    link = urlsplit(page.url)
    assert link.path == "/" and dict(parse_qsl(link.query)) == {"q": "striped background", "media": "photo"}

    page.goto(server + "/saved")
    assert page.locator("#saved-list .saved-link").all_inner_texts() == ["Stripes"]
    page.screenshot(path=str(shots / "saved-searches.png"), full_page=True)
    page.click("#saved-list a.saved-link")
    loaded(page, "#matches img")
    assert dict(parse_qsl(urlsplit(page.url).query)) == {"q": "striped background", "media": "photo"}
    matches = [Path(p).name for p in page.eval_on_selector_all("#matches img", "imgs => imgs.map(i => i.alt)")]
    assert len(matches) >= 5 and sum("striped background" in truth[n] for n in matches) >= 0.9 * len(matches)

    page.goto(server + "/saved")
    page.click("#saved-list .saved-remove button")
    page.wait_for_selector("#no-saved")
    assert page.locator("#saved-list").count() == 0 and urlsplit(page.url).path == "/saved"
    page.close()

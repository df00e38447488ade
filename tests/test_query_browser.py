"""A real browser asks the library the way people do (issue 21): filters from the page's form,
a query with NOT, sorting by date, and browsing by month down to a month's photos. On a phone-like
library (HEIC, RAW, video with dates and places) and the synthetic collection."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest

from .commands import run_cli
from .servers import serving
from .test_browser import browser, loaded, shots  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def library_server(tmp_path_factory):
    from bench.library import phone_library

    root = tmp_path_factory.mktemp("phone-library")
    photos = root / "photos"
    phone_library(photos)
    run_cli("tag", str(photos), "--model", "synthetic", home=root / "home")
    yield from serving(root / "home")


@pytest.fixture(scope="module")
def server(tagged_home):
    yield from serving(tagged_home)


def api(url: str, path: str, **params) -> dict:
    with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=30) as response:
        return json.loads(response.read())


def test_filters_from_the_form_narrow_a_text_query(library_server, browser, shots):  # noqa: F811
    page = browser.new_page()
    page.goto(library_server + "/?q=a+photo")
    loaded(page, ".grid img")
    everything = page.locator(".result").count()
    page.click("#filters summary")
    page.fill("#place", "Paris")
    page.select_option("#media", "photo")
    page.click("#filters button[type=submit]")
    loaded(page, ".grid img")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)
    assert query["place"] == ["Paris"] and query["media"] == ["photo"] and query["q"] == ["a photo"]
    names = sorted(page.locator(".result .name").all_inner_texts())
    assert names == ["IMG_0001.HEIC", "IMG_0004.HEIC"] and everything > len(names)  # the Live Photo: its still
    assert "Paris" in page.locator("#filters summary").inner_text()
    page.screenshot(path=str(shots / "query-filters.png"), full_page=True)
    # without a text: the photos passing the filters by date; the form's sort turns the order round
    page.goto(library_server + "/?place=Paris")
    loaded(page, "#results img")
    newest = page.eval_on_selector_all(".result time.taken", "ts => ts.map(t => t.getAttribute('datetime'))")
    assert len(newest) == 3 and newest == sorted(newest, reverse=True)
    assert page.locator("#filters").get_attribute("open") is not None  # filters set: the form shows
    page.select_option("#sort", "oldest")
    page.click("#filters button[type=submit]")
    loaded(page, "#results img")
    oldest = page.eval_on_selector_all(".result time.taken", "ts => ts.map(t => t.getAttribute('datetime'))")
    assert "sort=oldest" in page.url and oldest == newest[::-1]


def test_not_leaves_out_the_photos_matching_the_negative_text(server, browser, shots):  # noqa: F811
    page = browser.new_page()
    page.goto(server)
    page.fill("input[name=q]", "red thing -red circle")
    page.keyboard.press("Enter")
    loaded(page, "#matches img")
    assert "without “red circle”" in page.locator("#query-parts").inner_text()
    shown = [int(i) for i in page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")]
    negative = {h["image_id"] for h in api(server, "/api/search", q="red circle", k=1000)["results"] if h["match"]}
    with_it = [h["image_id"] for h in api(server, "/api/search", q="red thing", k=200)["results"]]
    assert negative & set(with_it[:len(shown)]) and not negative & set(shown)
    page.screenshot(path=str(shots / "query-not.png"), full_page=True)
    page.fill("input[name=q]", "red thing +")
    page.keyboard.press("Enter")
    assert "write text on both sides" in page.locator("p.error").inner_text()


def test_browsing_by_month_down_to_a_months_photos(library_server, browser, shots):  # noqa: F811
    page = browser.new_page()
    page.goto(library_server)
    page.click("#nav-browse")
    page.wait_for_selector("#groups")
    months = page.locator("#groups .group h2 a").all_inner_texts()
    dated = [m for m in months if m in ("August 2023", "July 2023", "December 2022")]
    assert dated == ["August 2023", "July 2023", "December 2022"]  # newest first
    july = int(dict(zip(months, page.locator("#groups .group .count").all_inner_texts()))["July 2023"])
    loaded(page, "#groups .covers img")
    page.screenshot(path=str(shots / "browse-months.png"), full_page=True)
    page.click("text=July 2023")
    loaded(page, "#results img")
    assert page.url.endswith("/?taken=2023-07")
    taken = page.eval_on_selector_all(".result time.taken", "ts => ts.map(t => t.getAttribute('datetime'))")
    assert taken and all(t.startswith("2023-07-") for t in taken) and taken == sorted(taken, reverse=True)
    assert 0 < page.locator(".result").count() <= july  # a stack counts each file, shows once
    page.goto(library_server + "/browse?by=place")
    places = page.locator("#groups .group h2 a").all_inner_texts()
    assert any(p.startswith("Paris") for p in places) and any(p.startswith("Sydney") for p in places)
    page.screenshot(path=str(shots / "browse-places.png"), full_page=True)

"""A real browser (headless Debian Chromium via Playwright) uses ``tagscope serve``: search, matches
vs others, paging, more like this, a photo as the query, the image page's navigation (mouse and
keyboard), phone widths, confirming, rejecting and adding tags, the evidence map. Screenshots of
each flow are kept as test artefacts in ``test-artifacts/screenshots/`` (or
``$TAGSCOPE_SCREENSHOTS``)."""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path

import pytest

from . import ROOT
from .photos import read_labels_jsonl
from .servers import serving
from .services import services_required
from .waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tagged_home):
    yield from serving(tagged_home)


@pytest.fixture(scope="session")
def shots() -> Path:
    folder = Path(os.environ.get("TAGSCOPE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def loaded(page, selector: str) -> None:
    page.wait_for_selector(selector)
    # Polled from Python: Playwright's wait_for_function evaluates its predicate with eval(), which
    # the page's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    wait_until(lambda: page.eval_on_selector_all(selector, "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"),
               timeout=30, every=0.1, what=f"images {selector} loaded")


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if services_required():
            pytest.fail(f"{CHROMIUM} missing: apt-get install -y chromium")
        pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


def test_typing_a_query_shows_matches_then_the_nearest_others(server, browser, synthetic_photos, shots):
    truth = read_labels_jsonl(synthetic_photos)
    page = browser.new_page()
    page.goto(server)
    assert page.locator("#empty-state").is_visible()
    page.fill("input[name=q]", "striped background")
    page.keyboard.press("Enter")
    loaded(page, "#matches img")
    matches = [Path(p).name for p in page.eval_on_selector_all("#matches img", "imgs => imgs.map(i => i.alt)")]
    assert len(matches) >= 10 and sum("striped background" in truth[n] for n in matches) >= 0.9 * len(matches)
    assert "match" in page.locator("#match-count").inner_text()
    names = page.locator("#matches .result .name").all_inner_texts()
    dates = page.locator("#matches .result time.date").all_inner_texts()
    assert names[0] == matches[0] and dates[0][:2] == "20"  # file name and date under each thumbnail
    assert "modified" in page.locator("#matches .result a").first.get_attribute("title")
    page.screenshot(path=str(shots / "search-matches.png"), full_page=True)
    page.goto(server + "/?q=blue+star")  # a compound: some matches, then the others
    loaded(page, "#matches img")
    assert page.locator("#others-heading").is_visible() and page.locator("#others .result").count() >= 1
    page.screenshot(path=str(shots / "search-matches-and-others.png"), full_page=True)
    page.close()


def test_a_text_that_describes_nothing_shows_no_matches_but_the_nearest(server, browser, shots):
    page = browser.new_page()
    page.goto(server + "/?q=crimson+object")
    page.wait_for_selector("#others .result")
    assert "No photos match" in page.locator("#match-count").inner_text()
    assert page.locator("#matches").count() == 0
    page.screenshot(path=str(shots / "search-no-matches.png"))
    page.close()


def test_paging_through_results(server, browser, shots):
    page = browser.new_page()
    page.goto(server + "/?q=red+thing")
    page.wait_for_selector(".result")
    first = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")
    page.locator("#next-page").click()
    page.wait_for_selector("#prev-page")
    second = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")
    assert "page=2" in page.url and len(second) == 40 and not set(first) & set(second)
    page.screenshot(path=str(shots / "search-page-2.png"))
    page.locator("#prev-page").click()
    page.wait_for_selector("#next-page")
    assert page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)") == first
    page.close()


def test_more_like_this_from_the_image_page(server, browser, synthetic_photos, shots):
    truth = read_labels_jsonl(synthetic_photos)
    page = browser.new_page()
    page.goto(server + "/?q=green+square")
    page.locator("#matches .result a").first.click()
    page.wait_for_selector("#more-like-this")
    source = Path(page.locator("h1.path").inner_text()).name
    page.locator("#more-like-this").click()
    loaded(page, "#results img")
    assert page.locator("#like-heading").is_visible()
    similar = [Path(p).name for p in page.eval_on_selector_all("#results img", "imgs => imgs.map(i => i.alt)")]
    assert source not in similar and len(similar) == 40
    shared = [len(set(truth[source]) & set(truth[name])) for name in similar[:10]]
    assert sum(s >= 2 for s in shared) >= 7, shared  # the nearest share at least two labels with it
    page.screenshot(path=str(shots / "more-like-this.png"))
    page.close()


def test_a_photo_uploaded_as_the_query_finds_itself(server, browser, synthetic_photos, shots):
    photo = sorted(synthetic_photos.glob("*.png"))[11]
    page = browser.new_page()
    page.goto(server)
    page.locator("#upload summary").click()
    page.set_input_files("#photo", str(photo))
    page.locator("#upload-button").click()
    loaded(page, "#results img")
    assert "not stored" in page.locator("#upload-heading").inner_text()
    assert Path(page.locator("#results img").first.get_attribute("alt")).name == photo.name
    page.screenshot(path=str(shots / "upload-query.png"))
    page.close()


def test_filters_by_folder_and_tag_in_the_page(server, browser, synthetic_photos):
    page = browser.new_page()
    page.goto(server + "/?q=circle")
    page.locator("#filters summary").click()
    page.fill("#tag", "blue thing")
    page.locator(".filter-form button").click()
    page.wait_for_selector(".result")
    assert "tag=blue+thing" in page.url and "blue thing" in page.locator("#filters summary").inner_text()
    page.fill("#folder", str(synthetic_photos.parent / "elsewhere"))
    page.locator(".filter-form button").click()
    page.wait_for_selector("#no-results")
    page.close()


def test_the_image_page_navigates_the_results_with_mouse_and_keys(server, browser, shots):
    page = browser.new_page()
    page.goto(server + "/?q=blue+star")
    order = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")
    page.locator(".result a").first.click()
    loaded(page, "img.large")
    natural = page.eval_on_selector("img.large", "i => i.naturalWidth / i.naturalHeight")
    shown = page.locator("img.large").bounding_box()
    assert abs(shown["width"] / shown["height"] - natural) < 0.02, (shown, natural)  # not stretched
    assert page.input_value("input[name=q]") == "blue star"  # the search box remembers the query
    assert "blue star" in page.locator("#tags").inner_text() or page.locator("#tags tr").count() > 1
    assert page.locator("#model-version").inner_text().startswith("model version")
    page.locator("#next").click()
    page.wait_for_selector("#prev")
    assert f"/image/{order[1]}?" in page.url
    page.keyboard.press("ArrowRight")
    page.wait_for_url(f"**/image/{order[2]}?**")
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**/image/{order[1]}?**")
    page.screenshot(path=str(shots / "image-page.png"))
    page.locator("#full-size").click()
    page.wait_for_url("**/full")
    assert page.evaluate("document.images.length") == 1  # the browser shows the photo itself
    page.go_back()
    page.keyboard.press("Escape")
    page.wait_for_selector("#matches, #others")
    assert "q=blue+star" in page.url
    page.close()


def test_keyboard_moves_between_results_and_opens_one(server, browser):
    page = browser.new_page()
    page.goto(server + "/?q=red+circle")
    page.wait_for_selector(".result")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    focused = page.evaluate("document.activeElement.parentElement.dataset.imageId")
    second = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")[1]
    assert focused == second
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/image/{second}?**")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.close()


def test_bad_query_shows_the_error_state_in_the_page(server, browser):
    page = browser.new_page()
    page.goto(server + "/?q=" + "x" * 301)
    assert "too long" in page.locator(".error").inner_text()
    page.close()
    with urllib.request.urlopen(server + "/api/search?q=blue%20star&k=3") as resp:
        body = json.loads(resp.read())
    assert len(body["results"]) == 3


@pytest.mark.parametrize("width", [390, 360])
def test_the_pages_fit_a_phone_screen(server, browser, width, shots):
    page = browser.new_page(viewport={"width": width, "height": 780})
    page.goto(server + "/?q=red+circle")
    page.wait_for_selector(".result")
    button = page.locator("form.search button").bounding_box()
    box = page.locator("form.search input").bounding_box()
    assert button["x"] >= 0 and button["x"] + button["width"] <= width, button
    assert box["width"] >= 120, box  # room left to type
    page.locator("#filters summary").click()
    page.locator("#upload summary").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    page.screenshot(path=str(shots / f"search-{width}px.png"), full_page=True)
    page.locator(".result a").first.click()
    page.wait_for_selector("img.large")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(shots / f"image-{width}px.png"), full_page=True)
    page.close()


@pytest.fixture(scope="module")
def curation_server(tmp_path_factory, synthetic_photos):
    """A server on a collection of its own (verdicts change it), tagged with a two-stream model."""
    from .bundles import two_stream_home

    yield from serving(two_stream_home(tmp_path_factory.mktemp("curation-ui"), synthetic_photos, 40))


def tag_rows(page) -> list[str]:
    return page.eval_on_selector_all("#tags tbody tr", "rows => rows.map(r => r.dataset.label)")


def test_reject_confirm_and_add_tags_and_see_the_page_and_search_change(curation_server, browser, shots):
    page = browser.new_page()
    page.goto(curation_server + "/?q=blue+thing")
    page.wait_for_selector("#matches .result")
    first = page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")[0]
    page.locator(".result a").first.click()
    page.wait_for_selector("#tags")
    page.locator('#tags tr[data-label="blue thing"] button.reject').click()  # reject
    page.wait_for_selector("#rejected")
    assert "blue thing" in page.locator("#rejected").inner_text() and "blue thing" not in tag_rows(page)
    page.locator("#back").click()
    page.wait_for_selector(".result")
    assert first not in page.eval_on_selector_all(".result", "rs => rs.map(r => r.dataset.imageId)")
    page.locator(".result a").first.click()
    page.wait_for_selector("#tags")
    third = tag_rows(page)[2]
    page.locator(f'#tags tr[data-label="{third}"] button.confirm').click()  # confirm
    page.wait_for_selector("#tags tr.confirmed")
    assert tag_rows(page)[0] == third and "confirmed" in page.locator("#tags tr").nth(1).inner_text()
    page.fill("#new-tag", "my cat")  # add one by hand
    page.locator("#add-tag button").click()
    page.wait_for_selector('#tags tr[data-label="my cat"]')
    assert set(tag_rows(page)[:2]) == {third, "my cat"}
    page.screenshot(path=str(shots / "curation.png"), full_page=True)
    shown = page.url.split("/image/")[1].split("?")[0]
    page.goto(curation_server + "/?q=my+cat")
    page.wait_for_selector("#matches .result")
    assert page.eval_on_selector_all("#matches .result", "rs => rs.map(r => r.dataset.imageId)")[0] == shown
    page.close()


def test_the_evidence_map_opens_on_demand(curation_server, browser, shots):
    page = browser.new_page()
    page.goto(curation_server + "/?q=red+circle")
    page.locator(".result a").first.click()
    page.wait_for_selector("#tags")
    assert page.locator("#evidence").count() == 0  # only on demand
    page.locator("#tags a.why").first.click()
    loaded(page, "#evidence-map")
    assert page.locator("#evidence figcaption").is_visible()
    page.screenshot(path=str(shots / "evidence-map.png"), full_page=True)
    page.close()

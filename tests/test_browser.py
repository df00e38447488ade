"""A real browser (headless Debian Chromium via Playwright) searches through ``tagscope serve``."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT, read_labels_jsonl, services_required, tagscope_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tagged_home):
    port = free_port()
    log_path = tagged_home / "serve.log"
    with open(log_path, "w") as log:  # request logs go to a file: a full pipe would block the server
        proc = subprocess.Popen([sys.executable, "-m", "tagscope", "serve", "--port", str(port)], cwd=ROOT,
                                env=tagscope_env(tagged_home), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(log_path.read_text()) from None
            time.sleep(0.3)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def wait_until(check, what: str, timeout: float = 30) -> None:
    """Poll a page condition from Python: Playwright's wait_for_function evaluates its predicate
    with eval(), which the page's Content-Security-Policy (no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


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


def test_typing_a_query_shows_the_right_thumbnails(server, browser, synthetic_photos):
    truth = read_labels_jsonl(synthetic_photos)
    page = browser.new_page()
    page.goto(server)
    assert page.locator("#empty-state").is_visible()
    page.fill("input[name=q]", "red thing")
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .result img")
    wait_until(lambda: page.eval_on_selector_all("#results img", "imgs => imgs.every(i => i.complete)"),
               "thumbnails did not load")
    results = page.locator("#results .result")
    assert results.count() >= 10
    loaded = page.eval_on_selector_all("#results img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(w > 0 for w in loaded)  # every thumbnail was served and decoded
    paths = page.eval_on_selector_all("#results img", "imgs => imgs.map(i => i.alt)")
    top10 = [Path(p).name for p in paths[:10]]
    hits = sum("red thing" in truth[name] for name in top10)
    assert hits >= 8, top10
    page.screenshot(path=str(Path(os.environ.get("TAGSCOPE_SCREENSHOTS", "/tmp")) / "tagscope-search.png"))
    page.locator("#results .result a").first.click()
    page.wait_for_selector("#tags")
    assert "red thing" in page.locator("#tags").inner_text()
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
def test_the_search_box_and_button_fit_a_phone_screen(server, browser, width, tmp_path_factory):
    page = browser.new_page(viewport={"width": width, "height": 780})
    page.goto(server + "/?q=red+circle")
    page.wait_for_selector("#results .result")
    button = page.locator("form.search button").bounding_box()
    box = page.locator("form.search input").bounding_box()
    assert button["x"] >= 0 and button["x"] + button["width"] <= width, button
    assert box["width"] >= 120, box  # room left to type
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scrolling
    page.screenshot(path=str(tmp_path_factory.mktemp("screens") / f"search-{width}px.png"))
    page.close()


def test_the_image_page_keeps_proportions_the_query_and_the_way_back(server, browser):
    page = browser.new_page()
    page.goto(server + "/?q=blue+star")
    page.locator("#results .result a").first.click()
    page.wait_for_selector("img.large")
    wait_until(lambda: page.eval_on_selector("img.large", "i => i.complete && i.naturalWidth > 0"),
               "the image did not load")
    natural = page.eval_on_selector("img.large", "i => i.naturalWidth / i.naturalHeight")
    shown = page.locator("img.large").bounding_box()
    assert abs(shown["width"] / shown["height"] - natural) < 0.02, (shown, natural)  # not stretched
    assert page.input_value("input[name=q]") == "blue star"  # the search box remembers the query
    page.locator("#back").click()
    page.wait_for_selector("#results .result")
    assert "q=blue+star" in page.url and page.locator("#results .result").count() >= 10
    page.close()

"""The jobs page in a real browser (headless Chromium via Playwright) on a real ``tagscope serve``
with a real ``tagscope worker`` on the embedded broker: start a tagging job from the page, see its
progress, cancel it, resume it and see it finish; add a schedule, run it now, remove it; tag with a
second model and switch back with "Use". Screenshots go where tests/test_browser.py puts its own."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from .databases import tagged_count
from .freeze import freeze_worker
from .photos import photos_subset
from .servers import serving, start_worker, stop_process
from .test_browser import browser, shots  # noqa: F401  (fixtures)
from .waiting import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.slow]


def row_state(page, job_id: int) -> str | None:
    row = page.locator(f"#job-{job_id}")
    return row.get_attribute("data-state") if row.count() else None


def shown_done(page, job_id: int) -> int:
    return int(page.locator(f"#job-{job_id} .done").inner_text())


def test_start_cancel_resume_a_job_and_run_a_schedule_in_the_browser(browser, shots, synthetic_photos,  # noqa: F811
                                                                   tmp_path):
    """The worker is frozen (SIGSTOP) once 10 photos are stored, so the page shows a job mid-way and
    the cancel lands mid-job however fast this machine tags; thawed, it stops, and Resume finishes."""
    home = tmp_path / "home"
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_TASK_SIZE": "10", "TAGSCOPE_BATCH_SIZE": "2"}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 120)
    server = serving(home, **env, TAGSCOPE_MODEL="synthetic")  # search's model on an empty home
    url = next(server)
    worker = start_worker(home, env, "--loader-workers", "0")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(url + "/")
        page.locator("#nav-jobs").click()
        page.wait_for_selector("#start-form")
        assert page.locator("#no-broker").count() == 0 and page.locator("#no-jobs").is_visible()
        start_from_the_page(page, photos, "synthetic", 1)
        assert row_state(page, 1) in ("queued", "scanning", "running")
        assert page.locator("#job-1 .folders").inner_text() == str(photos.resolve())
        watch_then_cancel(page, home, worker, screens=shots)
        resume_until_done(page, home, shots)
        add_run_and_remove_a_schedule(page, photos, shots)
        tag_with_a_second_model_and_switch_back(page, photos, shots)
    finally:
        page.close()
        stop_process(worker)
        server.close()


def start_from_the_page(page, photos: Path, model: str, job_id: int) -> None:
    page.fill("#start-folders", str(photos))
    page.fill("#start-model", model)
    page.locator("#start-job").click()
    page.wait_for_url(f"**/jobs?did=started&id={job_id}")
    assert f"Job {job_id} started" in page.locator("#jobs-notice").inner_text()


def db_url(home: Path) -> str:
    return f"sqlite:///{home.resolve()}/tagscope.sqlite"


def watch_then_cancel(page, home: Path, worker: subprocess.Popen, screens: Path) -> None:
    wait_until(lambda: tagged_count(db_url(home)) >= 10, timeout=240, every=0.05, what="10 photos tagged")
    freeze_worker(worker, home / "tagscope.sqlite")  # not inside a write: the page's cancel must not wait
    try:
        stored = tagged_count(db_url(home))
        assert stored < 120, "the job ended before the worker could be frozen"
        # The page follows the job by itself (web/static/jobs.js), no reload by the test.
        wait_until(lambda: row_state(page, 1) == "running" and shown_done(page, 1) == stored, timeout=30,
                   every=0.2, what="the page shows the job's progress")
        assert page.locator("#job-1 .total").inner_text() == "120"
        assert page.eval_on_selector("#job-1 progress", "p => p.value") == stored
        assert page.locator("#job-1 .rate").inner_text().endswith("img/s")
        page.screenshot(path=str(screens / "jobs-running.png"), full_page=True)
        page.locator("#job-1 button.cancel").click()
        page.wait_for_url("**/jobs?did=cancelled&id=1")
    finally:
        os.killpg(worker.pid, signal.SIGCONT)
    assert row_state(page, 1) == "cancelled" and page.locator("#job-1 button.resume").is_visible()
    assert "cancelled by the user" in page.locator("#job-1 .state").inner_text()
    page.screenshot(path=str(screens / "jobs-cancelled.png"), full_page=True)
    log = home / "worker.log"
    wait_until(lambda: log.read_text().count(": tagged ") + log.read_text().count("skipped") >= 12,
               timeout=90, what="all 12 task messages handled")
    assert 10 <= tagged_count(db_url(home)) < 120


def resume_until_done(page, home: Path, screens: Path) -> None:
    page.locator("#job-1 button.resume").click()
    page.wait_for_url("**/jobs?did=resumed&id=1")
    wait_until(lambda: row_state(page, 1) == "done", timeout=240, every=0.5, what="the page shows the job done")
    assert shown_done(page, 1) == 120 and page.locator("#job-1 .failed").inner_text() == "0"
    assert page.locator("#job-1 button").count() == 0  # nothing left to do with it
    assert tagged_count(db_url(home)) == 120
    wait_until(lambda: (page.reload(), "120 vectors" in page.locator("#index-table").inner_text())[1],
               timeout=60, every=1, what="the index holds the job's photos")
    assert "up to date" in page.locator("#index-table").inner_text()
    assert "120 images: 120 tagged" in page.locator("#collection-counts").inner_text()
    page.screenshot(path=str(screens / "jobs-done.png"), full_page=True)


def add_run_and_remove_a_schedule(page, photos: Path, screens: Path) -> None:
    page.locator("#add-schedule summary").click()
    page.fill("#schedule-folders", str(photos))
    page.fill("#schedule-every", "1d")
    page.fill("#schedule-model", "synthetic")
    page.locator("#add-schedule-button").click()
    page.wait_for_url("**/jobs?did=schedule-added&id=1")
    assert page.locator("#schedule-1 .every").inner_text() == "1d"
    page.locator("#schedule-1 button.run").click()
    page.wait_for_url("**/jobs?did=schedule-run&id=2")
    wait_until(lambda: row_state(page, 2) == "done", timeout=120, every=0.5, what="the schedule's run done")
    assert page.locator("#job-2 .total").inner_text() == "0"  # everything was tagged already
    assert "job 2 (done)" in page.locator("#schedule-1 .last-job").inner_text()
    page.screenshot(path=str(screens / "jobs-schedule.png"), full_page=True)
    page.locator("#schedule-1 button.remove").click()
    page.wait_for_url("**/jobs?did=schedule-removed&id=1")
    assert page.locator("#no-schedules").is_visible()


def tag_with_a_second_model_and_switch_back(page, photos: Path, screens: Path) -> None:
    """Search switches to a new model once it covers the collection; "Use" switches back."""
    start_from_the_page(page, photos, "synthetic-mkt", 3)
    wait_until(lambda: row_state(page, 3) == "done", timeout=240, every=0.5, what="the second model's job done")

    def active_spec() -> str:
        page.reload()
        return page.locator("#models-table tr.active .spec").inner_text()

    wait_until(lambda: active_spec() == "synthetic-mkt", timeout=60, every=1, what="search serves the new model")
    page.locator("#models-table tr:not(.active) button.use").click()
    page.wait_for_url("**/jobs?did=model-used&id=*")
    assert page.locator("#models-table tr.active .spec").inner_text() == "synthetic"
    page.screenshot(path=str(screens / "jobs-models.png"), full_page=True)

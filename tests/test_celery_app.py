"""The Celery app is built once per process and attaches nothing a client does not need."""

from __future__ import annotations

from celery import signals

from core.settings import load_settings
from tagger.jobs.celery_app import attach_sweeper, celery_app
from tagger.jobs.task_names import SCAN_TASK, TAG_TASK, TICK_TASK


def _ready_receivers() -> int:
    return len(signals.worker_ready.receivers or [])


def test_one_app_per_process_and_settings_and_no_sweeper_for_clients(tmp_path):
    settings = load_settings(environ={}, home=str(tmp_path))
    before = _ready_receivers()
    app = celery_app(settings)
    assert celery_app(settings) is app  # the CLI, the web app and the tasks share it
    assert _ready_receivers() == before  # a client (tag, serve, jobs resume) starts no sweeper
    assert app.conf.task_always_eager and app.conf.tagscope_settings is settings
    assert {TAG_TASK, SCAN_TASK, TICK_TASK} <= set(app.tasks)
    other = celery_app(load_settings(environ={}, home=str(tmp_path / "other")))
    assert other is not app and celery_app(settings) is app


def test_the_worker_attaches_the_sweeper_once(tmp_path):
    settings = load_settings(environ={"TAGSCOPE_BROKER_URL": "embedded"}, home=str(tmp_path))
    app = celery_app(settings)
    before = _ready_receivers()
    attach_sweeper(app, settings)
    attach_sweeper(app, settings)
    assert _ready_receivers() == before + 1

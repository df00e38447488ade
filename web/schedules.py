"""Schedules in the JSON API: the same as ``tagscope schedule`` (list, add, remove), plus running
one now.

``GET /api/schedules`` lists; ``POST /api/schedules`` (``{"folders", "every", "model"}``) adds;
``DELETE /api/schedules/ID`` removes; ``POST /api/schedules/ID/run`` queues a run now. Schedules
run on workers (beat starts them), so adding or running one needs a broker: without one the API
answers 409 saying what to set.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from core.errors import TagscopeError
from tagger.jobs import control as job_control
from tagger.jobs.schedules import (
    NoSuchSchedule,
    add_schedule,
    get_schedule,
    list_schedules,
    parse_every,
    remove_schedule,
    run_now,
)
from tagger.jobs.submit import folders as checked_folders
from tagger.jobs.submit import model_spec
from tagger.params import JobParams
from web.body import json_body, optional_string, string_list
from web.context import get_db, get_settings
from web.errors import respond
from web.jobs import NoBroker

bp = Blueprint("schedules", __name__)

NEED_BROKER = ("no broker configured: schedules run on workers, so the web app cannot start them: set "
               "TAGSCOPE_BROKER_URL (embedded on one machine, or a Redis/RabbitMQ URL) for the server and "
               "run `tagscope worker --beat`")


@bp.app_errorhandler(NoSuchSchedule)
def no_schedule(exc: NoSuchSchedule):
    return respond(404, str(exc))


@bp.get("/api/schedules")
def list_api():
    return jsonify({"schedules": list_schedules(get_db())})


@bp.post("/api/schedules")
def add_api():
    body = json_body('{"folders": ["/photos"], "every": "1d", "model": "synthetic"} (model is optional)')
    every = body.get("every")
    if not isinstance(every, (str, int)) or isinstance(every, bool):
        raise TagscopeError('"every" is required: an interval such as "15m", "1h", "1d" or "1h30m"')
    return jsonify(add(string_list(body.get("folders"), "folders"), str(every),
                       optional_string(body.get("model"), "model"))), 201


@bp.delete("/api/schedules/<id:schedule_id>")
def remove_api(schedule_id: int):
    remove_schedule(get_db(), schedule_id)
    return jsonify({"schedules": list_schedules(get_db())})


@bp.post("/api/schedules/<id:schedule_id>/run")
def run_api(schedule_id: int):
    return jsonify(run(schedule_id)), 201


def add(paths: list[str], every: str, model: str | None) -> dict[str, Any]:
    """A new schedule of ``paths`` every ``every`` with ``model`` (default: as a new job's)."""
    settings, db = get_settings(), get_db()
    every_s = parse_every(every)
    checked = checked_folders(paths)
    spec = model_spec(settings, db, model)
    if not settings.broker_url:
        raise NoBroker(NEED_BROKER)
    return get_schedule(db, add_schedule(db, checked, every_s, spec, JobParams.from_settings(settings)))


def run(schedule_id: int) -> dict[str, Any]:
    """Queue a run of a schedule now and send its scan: the new job."""
    settings, db = get_settings(), get_db()
    get_schedule(db, schedule_id)  # 404 before 409
    if not settings.broker_url:
        raise NoBroker(NEED_BROKER)
    job_id = run_now(db, schedule_id, settings.task_lease)
    job_control.send(settings, job_id, "scan", [job_id])
    return job_control.show_job(db, job_id)

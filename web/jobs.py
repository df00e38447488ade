"""Jobs in the JSON API: the same figures and controls as ``tagscope jobs``.

``GET /api/jobs`` and ``GET /api/jobs/ID`` show; ``POST /api/jobs/ID/cancel``, ``/resume`` and
``/retry`` act. Resuming or retrying sends work to the workers, so it needs a broker: without
one the web process would tag inside a request, and the API answers 409 with the command to run.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from core.db import get_database
from core.errors import TagscopeError
from tagger.jobs import control as job_control
from tagger.jobs.rows import WORKERS

bp = Blueprint("jobs", __name__)


def _settings():
    return current_app.config["TAGSCOPE_SETTINGS"]


def _db():
    return get_database(_settings().db_url)


@bp.get("/api/jobs")
def list_jobs():
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise TagscopeError("limit must be a whole number from 1 to 1000")
    return jsonify({"jobs": job_control.list_jobs(_db(), int(limit))})


@bp.get("/api/jobs/<id:job_id>")
def show_job(job_id: int):
    return jsonify(job_control.show_job(_db(), job_id))


@bp.post("/api/jobs/<id:job_id>/cancel")
def cancel_job(job_id: int):
    return jsonify(job_control.cancel_job(_db(), job_id))


@bp.post("/api/jobs/<id:job_id>/resume")
def resume_job(job_id: int):
    _need_broker(f"tagscope jobs resume {job_id}")
    kind, ids = job_control.resume_job(_db(), job_id)
    job_control.send(_settings(), job_id, kind, ids)
    return jsonify(job_control.show_job(_db(), job_id))


@bp.post("/api/jobs/<id:job_id>/retry")
def retry_job(job_id: int):
    _need_broker(f"tagscope jobs retry {job_id}")
    new_id, task_ids = job_control.retry_job(_db(), job_id, _settings().task_size, WORKERS)
    job_control.send(_settings(), new_id, "tasks", task_ids)
    return jsonify(job_control.show_job(_db(), new_id)), 201


class NoBroker(TagscopeError):
    """Raised where the web process would have to tag inside a request."""


def _need_broker(command: str) -> None:
    if not _settings().broker_url:
        raise NoBroker(f"no broker configured, so the web app cannot hand work to workers: run `{command}` "
                       "(or set TAGSCOPE_BROKER_URL and start `tagscope worker`)")

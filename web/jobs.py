"""Jobs in the JSON API: the same figures and controls as ``tagscope jobs``.

``GET /api/jobs`` and ``GET /api/jobs/ID`` show; ``POST /api/jobs`` starts one (folders and
optionally a model: a worker scans and tags them); ``POST /api/jobs/ID/cancel``, ``/resume`` and
``/retry`` act. Starting, resuming or retrying sends work to the workers, so it needs a broker:
without one the web process would tag inside a request, and the API answers 409 with the command
to run.
"""

from __future__ import annotations

import shlex
from typing import Any

from flask import Blueprint, jsonify, request

from core.bounds import MAX_LIMIT, whole_number
from core.errors import TagscopeError
from tagger.jobs import control as job_control
from tagger.jobs.rows import WORKERS
from tagger.jobs.submit import folders as checked_folders
from tagger.jobs.submit import model_spec, queue_job
from web.body import json_body, optional_string, string_list
from web.context import get_db, get_settings

bp = Blueprint("jobs", __name__)


@bp.get("/api/jobs")
def list_jobs():
    limit = whole_number(request.args.get("limit", 20), "limit", 1, MAX_LIMIT)
    return jsonify({"jobs": job_control.list_jobs(get_db(), limit)})


@bp.post("/api/jobs")
def start_job_api():
    body = json_body('{"folders": ["/photos/2023"], "model": "synthetic"} (model is optional)')
    return jsonify(start(string_list(body.get("folders"), "folders"), optional_string(body.get("model"), "model"))), 201


def start(paths: list[str], model: str | None) -> dict[str, Any]:
    """Queue a tagging job of ``paths`` and send its scan to the workers: the job as the API shows it."""
    settings, db = get_settings(), get_db()
    checked = checked_folders(paths)
    spec = model_spec(settings, db, model)
    _need_broker("tagscope tag " + " ".join(shlex.quote(p) for p in checked) + f" --model {shlex.quote(spec)}")
    job_id = queue_job(settings, db, checked, spec)
    job_control.send(settings, job_id, "scan", [job_id])
    return job_control.show_job(db, job_id)


@bp.get("/api/jobs/<id:job_id>")
def show_job(job_id: int):
    return jsonify(job_control.show_job(get_db(), job_id))


@bp.post("/api/jobs/<id:job_id>/cancel")
def cancel_job(job_id: int):
    return jsonify(job_control.cancel_job(get_db(), job_id))


@bp.post("/api/jobs/<id:job_id>/resume")
def resume_job(job_id: int):
    return jsonify(resume(job_id))


@bp.post("/api/jobs/<id:job_id>/retry")
def retry_job(job_id: int):
    return jsonify(retry(job_id)), 201


def resume(job_id: int) -> dict[str, Any]:
    """Make a stopped job run again on the workers: the job."""
    job_control.show_job(get_db(), job_id)  # 404 before 409
    _need_broker(f"tagscope jobs resume {job_id}")
    kind, ids = job_control.resume_job(get_db(), job_id)
    job_control.send(get_settings(), job_id, kind, ids)
    return job_control.show_job(get_db(), job_id)


def retry(job_id: int) -> dict[str, Any]:
    """Tag a job's failed images again in a new job on the workers: the new job."""
    job_control.show_job(get_db(), job_id)
    _need_broker(f"tagscope jobs retry {job_id}")
    new_id, task_ids = job_control.retry_job(get_db(), job_id, get_settings().task_size, WORKERS)
    job_control.send(get_settings(), new_id, "tasks", task_ids)
    return job_control.show_job(get_db(), new_id)


class NoBroker(TagscopeError):
    """Raised where the web process would have to tag inside a request."""


def _need_broker(command: str) -> None:
    if not get_settings().broker_url:
        raise NoBroker(f"no broker configured, so the web app cannot hand work to workers: run `{command}` "
                       "(or set TAGSCOPE_BROKER_URL and start `tagscope worker`)")

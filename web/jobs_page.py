"""The jobs page (``/jobs``): tagging jobs with their progress, rate and ETA and the controls of
each (cancel, resume, retry failed images); a form that starts one; schedules (add, remove, run
now); model versions (which one search serves, use another); the index's state.

Everything it shows and does is the JSON API's (:mod:`web.jobs`, :mod:`web.schedules`,
:mod:`web.models`); its buttons are plain HTML forms posting to ``/jobs/...`` (so they pass the
same cross-site and token checks as every write, :mod:`web.security`), each answering 303 back to
the page, or the page again with the error (409 with the command to run when the server has no
broker). ``web/static/jobs.js`` follows running jobs from ``GET /api/jobs`` (no inline script).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Flask, redirect, render_template, request, url_for

from core.errors import TagscopeError
from tagger.jobs import control as job_control
from tagger.jobs.control import NoSuchJob
from tagger.jobs.schedules import NoSuchSchedule, list_schedules
from tagger.jobs.schedules import remove_schedule as remove_schedule_row
from tagger.jobs.submit import model_spec
from tagger.status import collection_status
from tagger.versions import list_versions
from web.context import get_db, get_settings
from web.jobs import NoBroker
from web.jobs import resume as resume_job
from web.jobs import retry as retry_job
from web.jobs import start as start_job
from web.models import bp as models_bp
from web.models import index_states
from web.models import use as use_version_ref
from web.schedules import add as add_schedule_row
from web.schedules import bp as schedules_bp
from web.schedules import run as run_schedule_now

bp = Blueprint("jobs_page", __name__)


def install(app: Flask) -> None:
    """Register the page and the API it adds (schedules, model versions, the index)."""
    app.register_blueprint(bp)
    app.register_blueprint(schedules_bp)
    app.register_blueprint(models_bp)


SHOWN_JOBS = 50
ACTIVE = ("queued", "scanning", "running")
NOTICES = {"started": "Job {id} started: a worker registers its folders, then tags what needs it.",
           "cancelled": "Job {id} cancelled: what it stored stays; Resume goes on from there.",
           "resumed": "Job {id} resumed.",
           "retried": "Job {id} tags the failed images again.",
           "schedule-added": "Schedule {id} added: beat starts it when it is due.",
           "schedule-removed": "Schedule {id} removed (its jobs and what they stored stay).",
           "schedule-run": "The schedule's run started as job {id}.",
           "model-used": "Search now serves the model marked active below."}


@bp.app_template_filter("when")
def _when(iso: str | None) -> str:
    """An ISO time (UTC) in this machine's time zone, to the second."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")


@bp.app_template_filter("duration")
def _duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h07m`` (web/static/jobs.js writes the same)."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _page(error: str | None = None, status: int = 200):
    settings, db = get_settings(), get_db()
    notice = None
    did, ref = request.args.get("did"), request.args.get("id", "")
    if did in NOTICES and ref.isdigit() and len(ref) < 20:
        notice = NOTICES[did].format(id=int(ref))
    try:
        default_model = model_spec(settings, db)
    except TagscopeError:
        default_model = ""
    jobs = job_control.list_jobs(db, SHOWN_JOBS)
    return render_template(
        "jobs.html", jobs=jobs, active=any(j["state"] in ACTIVE for j in jobs), schedules=list_schedules(db),
        models=list_versions(db), indexes=index_states(settings), status=collection_status(settings, 0),
        broker=bool(settings.broker_url), default_model=default_model, error=error, notice=notice,
        form=request.form if error else {}, shown=SHOWN_JOBS), status


@bp.get("/jobs")
def page():
    return _page()


def _act(action, did: str, ref=lambda out: out["id"]):
    """Run a form's action; 303 back to the page with a notice, or the page with the error."""
    try:
        out = action()
    except NoBroker as exc:
        return _page(str(exc), 409)
    except (NoSuchJob, NoSuchSchedule) as exc:
        return _page(str(exc), 404)
    except TagscopeError as exc:
        return _page(str(exc), 400)
    return redirect(url_for("jobs_page.page", did=did, id=ref(out)), code=303)


def _lines(name: str) -> list[str]:
    """A textarea's folders, one a line."""
    return [line.strip() for line in request.form.get(name, "").splitlines() if line.strip()]


def _model() -> str | None:
    return request.form.get("model", "").strip() or None


@bp.post("/jobs/start")
def start():
    return _act(lambda: start_job(_lines("folders"), _model()), "started")


@bp.post("/jobs/<id:job_id>/cancel")
def cancel(job_id: int):
    return _act(lambda: job_control.cancel_job(get_db(), job_id), "cancelled")


@bp.post("/jobs/<id:job_id>/resume")
def resume(job_id: int):
    return _act(lambda: resume_job(job_id), "resumed")


@bp.post("/jobs/<id:job_id>/retry")
def retry(job_id: int):
    return _act(lambda: retry_job(job_id), "retried")


@bp.post("/jobs/schedules")
def add_schedule():
    return _act(lambda: add_schedule_row(_lines("folders"), request.form.get("every", ""), _model()),
                "schedule-added")


@bp.post("/jobs/schedules/<id:schedule_id>/remove")
def remove_schedule(schedule_id: int):
    def remove() -> dict[str, Any]:
        remove_schedule_row(get_db(), schedule_id)
        return {"id": schedule_id}

    return _act(remove, "schedule-removed")


@bp.post("/jobs/schedules/<id:schedule_id>/run")
def run_schedule(schedule_id: int):
    return _act(lambda: run_schedule_now(schedule_id), "schedule-run")


@bp.post("/jobs/models/use")
def use_model():
    def use() -> dict[str, Any]:
        mv = use_version_ref(request.form.get("version", "").strip() or "(none given)")
        return {"id": mv.id}

    return _act(use, "model-used")

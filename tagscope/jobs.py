"""Job control and periodic re-tagging: ``tagscope jobs``, ``tagscope schedule``, ``tagscope beat``."""

from __future__ import annotations

import json

import click

from core.errors import TagscopeError
from tagscope.common import database, fail_cleanly, settings_for
from tagscope.output import echo_rows


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the shape of GET /api/jobs).")
@click.option("--limit", type=int, default=20, show_default=True, help="Jobs to list (1 to 1000).")
@click.pass_context
@fail_cleanly
def jobs(ctx: click.Context, as_json: bool, limit: int) -> None:
    """Tagging jobs: list them (newest first), or show, cancel, resume or retry one."""
    if ctx.invoked_subcommand is not None:
        return
    from tagger.jobs.control import list_jobs

    rows = list_jobs(database(settings_for(ctx)), limit)
    echo_rows(rows, _line, as_json=as_json, document={"jobs": rows}, indent=1, ensure_ascii=True, hint_err=False,
              empty="no jobs yet: `tagscope tag PATH` starts one")


def _line(r: dict) -> str:
    eta = f", ETA {r['eta_s']:.0f}s" if r["eta_s"] is not None else ""
    where = f" on {', '.join(r['workers'])}" if r["workers"] else ""
    sched = f" (schedule {r['schedule_id']})" if r["schedule_id"] else ""
    return (f"job {r['id']}  {r['kind']}{sched}  {r['state']}  {r['done']} done, {r['failed']} failed of "
            f"{r['total']}  {r['rate_img_s']:.1f} img/s{eta}{where}" + (f"  ({r['error']})" if r["error"] else ""))


@jobs.command("show")
@click.argument("job_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (the shape of GET /api/jobs/ID).")
@click.pass_context
@fail_cleanly
def show_cmd(ctx: click.Context, job_id: int, as_json: bool) -> None:
    """One job: figures counted from its images, tasks, workers holding them, rate and ETA."""
    from tagger.jobs.control import show_job

    row = show_job(database(settings_for(ctx)), job_id)
    if as_json:
        click.echo(json.dumps(row, indent=1))
        return
    click.echo(_line(row))
    t = row["tasks"]
    click.echo(f"  tasks: {t['queued']} queued, {t['running']} running, {t['done']} done; "
               f"model {(row['model'] or {}).get('spec')}; created {row['created_at']}, finished {row['finished_at']}")
    for warning in row["warnings"]:
        click.echo(f"  warning: {warning}")


@jobs.command("cancel")
@click.argument("job_id", type=int)
@click.pass_context
@fail_cleanly
def cancel_cmd(ctx: click.Context, job_id: int) -> None:
    """Stop a job; running tasks stop after their current batch, what is stored stays."""
    from tagger.jobs.control import cancel_job

    click.echo(_line(cancel_job(database(settings_for(ctx)), job_id)))


@jobs.command("resume")
@click.argument("job_id", type=int)
@click.pass_context
@fail_cleanly
def resume_cmd(ctx: click.Context, job_id: int) -> None:
    """Run a cancelled, failed or interrupted job again from where it stopped (without a broker,
    in this process)."""
    from tagger.jobs.control import resume_job, send, show_job

    settings = settings_for(ctx)
    kind, ids = resume_job(database(settings), job_id)
    send(settings, job_id, kind, ids)
    click.echo(_line(show_job(database(settings), job_id)))


@jobs.command("retry")
@click.argument("job_id", type=int)
@click.pass_context
@fail_cleanly
def retry_cmd(ctx: click.Context, job_id: int) -> None:
    """Tag again, in a new job, the images this job recorded as failed."""
    from tagger.jobs.control import retry_job, send, show_job

    settings = settings_for(ctx)
    new_id, task_ids = retry_job(database(settings), job_id, settings.task_size, _runner(settings))
    send(settings, new_id, "tasks", task_ids)
    click.echo(_line(show_job(database(settings), new_id)))


def _runner(settings) -> str:
    from tagger.jobs.rows import IN_PROCESS, WORKERS

    return WORKERS if settings.broker_url else IN_PROCESS


@click.group()
def schedule() -> None:
    """Periodic re-tagging, run by Celery beat (`tagscope beat`, or `tagscope worker --beat`)."""


@schedule.command("add")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--every", "every", required=True, help="Interval: 10s, 15m, 1h, 1d, 1h30m ... (at most 365d)")
@click.option("--model", help="Model spec to tag with (default: TAGSCOPE_MODEL, else the collection's, "
                              "else the default model).")
@click.pass_context
@fail_cleanly
def schedule_add(ctx: click.Context, paths: tuple[str, ...], every: str, model: str | None) -> None:
    """Re-tag PATHS every interval: each run registers new, changed and missing files and tags
    only what needs it; a run never overlaps the schedule's previous one."""
    from core.schema import collection_model_version
    from tagger.jobs.schedules import add_schedule, format_every, parse_every
    from tagger.params import JobParams

    settings = settings_for(ctx, model=model)
    if not settings.broker_url:
        raise TagscopeError("schedules run on workers: set TAGSCOPE_BROKER_URL=embedded (one machine, no server) "
                            "or a Redis/RabbitMQ URL, then run `tagscope worker --beat`")
    every_s = parse_every(every)
    db = database(settings)
    spec = settings.model
    if spec is None:
        with db.session() as s:
            current = collection_model_version(s)
        spec = current.spec if current is not None else settings.tagging_model
    schedule_id = add_schedule(db, paths, every_s, str(spec), JobParams.from_settings(settings))
    click.echo(f"schedule {schedule_id}: {', '.join(paths)} every {format_every(every_s)} with {spec}; "
               "runs while `tagscope beat` (or `tagscope worker --beat`) and a worker run")


@schedule.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def schedule_list(ctx: click.Context, as_json: bool) -> None:
    """The schedules, their next run and their last job."""
    from tagger.jobs.schedules import list_schedules

    rows = list_schedules(database(settings_for(ctx)))
    echo_rows(rows, _schedule_line, as_json=as_json, document={"schedules": rows}, indent=1, ensure_ascii=True,
              hint_err=False, empty="no schedules: `tagscope schedule add PATH --every 1d` adds one")


def _schedule_line(r: dict) -> str:
    last = r["last_job"]
    return (f"schedule {r['id']}  every {r['every']}  {', '.join(r['paths'])}  model {r['model']}  "
            f"next {r['next_run_at']}  last job " + (f"{last['id']} ({last['state']})" if last else "none"))


@schedule.command("remove")
@click.argument("schedule_id", type=int)
@click.pass_context
@fail_cleanly
def schedule_remove(ctx: click.Context, schedule_id: int) -> None:
    """Remove a schedule (its jobs and what they stored stay)."""
    from tagger.jobs.schedules import remove_schedule

    remove_schedule(database(settings_for(ctx)), schedule_id)
    click.echo(f"schedule {schedule_id} removed")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@fail_cleanly
def beat(ctx: click.Context, celery_args: tuple[str, ...]) -> None:
    """Run Celery beat: it starts the schedules' jobs (`tagscope schedule`); run exactly one."""
    from tagger.jobs.celery_app import beat_argv, celery_app

    settings = settings_for(ctx)
    if not settings.broker_url:
        raise TagscopeError("beat needs a broker: set TAGSCOPE_BROKER_URL=embedded (one machine, no server) "
                            "or a Redis/RabbitMQ URL")
    database(settings)
    celery_app(settings).start(["beat", *beat_argv(settings), "--loglevel=INFO", *celery_args])

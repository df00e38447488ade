"""Commands that run the machinery: the database schema, Celery workers, the vector index."""

from __future__ import annotations

import click

from core.errors import TagscopeError
from migrations import current_revision, get_database, upgrade
from tagscope.common import database, fail_cleanly, settings_for


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
@fail_cleanly
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    settings = settings_for(ctx)
    db_ = get_database(settings.db_url, migrate=False)
    before = current_revision(db_)
    upgrade(db_, revision)
    click.echo(f"database {before or 'empty'} -> {current_revision(db_)}")


@db.command("current")
@click.pass_context
@fail_cleanly
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database."""
    click.echo(current_revision(get_database(settings_for(ctx).db_url, migrate=False)) or "empty")


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Worker processes; keep 1 per GPU (each loads the model).")
@click.option("--device", help="This worker's device: cpu, cuda, cuda:1 ... (TAGSCOPE_DEVICE).")
@click.option("--batch-size", type=int, help="This worker's images per inference batch (TAGSCOPE_BATCH_SIZE).")
@click.option("--loader-workers", type=int, help="This worker's decode processes (TAGSCOPE_LOADER_WORKERS).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnx", "openvino"]),
              help="Where the image tower runs for the scheduled jobs this worker starts (TAGSCOPE_RUNTIME); "
                   "a queued job runs on the runtime it was queued for.")
@click.option("--beat", "with_beat", is_flag=True,
              help="Also run Celery beat in this worker, which starts scheduled re-tagging (`tagscope schedule`); "
                   "one per installation, as `tagscope beat` is.")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@fail_cleanly
def worker(ctx: click.Context, concurrency: int, device: str | None, batch_size: int | None,
           loader_workers: int | None, runtime: str | None, with_beat: bool, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker that tags batches (needs TAGSCOPE_BROKER_URL, or 'embedded').

    A worker runs every job on its own machine's settings (device, batch size, decode workers),
    whoever queued the job; the model is the job's model version."""
    from tagger.jobs.celery_app import TASK_QUEUE, attach_sweeper, beat_argv, celery_app

    settings = settings_for(ctx, device=device, batch_size=batch_size, loader_workers=loader_workers,
                            runtime=runtime)
    if not settings.broker_url:
        raise TagscopeError("no broker configured: set TAGSCOPE_BROKER_URL=embedded (no server needed), "
                            "or redis://HOST:6379/0, or amqp://USER:PASS@HOST//")
    database(settings)  # migrate / check the schema before taking work
    app = celery_app(settings)
    attach_sweeper(app, settings)  # this process consumes: it hands out again what dead workers held
    # Solo pool: the tasks' process starts its decode processes, which a prefork child may not do.
    pool = "solo" if concurrency == 1 else "threads"
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}", "-Q", TASK_QUEUE,
            "--loglevel=INFO", *(["--beat", *beat_argv(settings)] if with_beat else []), *celery_args]
    app.worker_main(argv)


@click.group()
def index() -> None:
    """The vector index."""


def _versions(settings) -> list:
    """Every model version the collection has embeddings or an index for (:class:`indexer.store.StoreVersion`)."""
    from indexer.store import all_versions

    return all_versions(database(settings))


@index.command("sync")
@click.pass_context
@fail_cleanly
def index_sync(ctx: click.Context) -> None:
    """Apply stored embeddings not yet in the index (tagging does this every few seconds)."""
    from indexer.sync import sync_index

    settings = settings_for(ctx)
    n = sum(sync_index(settings, database(settings), mv, role="cli") or 0 for mv in _versions(settings))
    click.echo(f"applied {n} changes")


@index.command("rebuild")
@click.option("--kind", type=click.Choice(["auto", "flat", "hnsw", "ivfpq"]),
              help="Index kind (default: TAGSCOPE_INDEX_KIND, else the last --kind given, else auto: exact "
                   "below 5x10^4 vectors, approximate above). A kind given here sticks: later background "
                   "rebuilds keep it until --kind auto.")
@click.pass_context
@fail_cleanly
def index_rebuild(ctx: click.Context, kind: str | None) -> None:
    """Rebuild the index of every model version from the stored embeddings (no photo is read)."""
    import time

    from indexer.rebuild import rebuild_index

    settings = settings_for(ctx)
    for mv in _versions(settings):
        t0 = time.time()
        size = rebuild_index(settings, database(settings), mv, kind)
        click.echo(f"index {mv.version}: {size} vectors from the embedding store in {time.time() - t0:.1f}s")


@index.command("status")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def index_status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Kind, size, memory and freshness of each model version's index."""
    import json

    from indexer.status import index_status

    settings = settings_for(ctx)
    rows = [index_status(settings, database(settings), mv) for mv in _versions(settings)]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    for r in rows:
        fresh = "up to date" if r["fresh"] else f"{r['pending_changes']} changes pending (`tagscope index sync`)"
        tombstones = f" (+{r['tombstones']} tombstones)" if r["tombstones"] else ""
        click.echo(f"{r['version']}  {r['kind']} ({r['factory']})  {r['size']} vectors{tombstones} of "
                   f"{r['stored_embeddings']} stored, {r['file_bytes'] / 1e6:.1f} MB, {fresh}")
        held = (f"entries {r['log']['floor'] + 1}..{r['log']['head']}" if r["log"]["head"] > r["log"]["floor"]
                else f"empty (all {r['log']['head']} entries applied everywhere)")
        click.echo(f"  change log: {held}; this copy at {r['position'] if r['position'] is not None else 'none'}")
        for c in r["copies"]:
            click.echo(f"  copy {c['name']} ({c['role'] or '-'}): at {c['position']}, {c['vectors']} vectors, "
                       f"seen {c['seen_at'][:19]}{'' if c['live'] else ' (silent: no longer holds entries back)'}")
        click.echo(f"  rebuild: {_describe_rebuild(r['rebuild'], r['rebuild_wanted'])}")
        if r.get("damaged"):
            todo = ("being rebuilt" if r["damaged"]["rebuilding"] else
                    "not being rebuilt: run `tagscope index rebuild`")
            click.echo(f"  damaged {_when(r['damaged']['at'])}: {r['damaged']['error']}; {todo} "
                       "(searches answer from the stored embeddings meanwhile)")


def _describe_rebuild(last: dict, wanted: str | None) -> str:
    """One line on the index's rebuilds: running, the last one, and whether one is wanted."""
    if last.get("running"):
        return f"running since {_when(last.get('started_at'))} ({last.get('reason')}) as {last.get('kind')}"
    parts = []
    if last.get("state") == "done":
        parts.append(f"last {_when(last.get('finished_at'))} as {last['kind']} in {last.get('seconds', 0):.1f}s")
    elif last.get("state") in ("failed", "running"):  # "running" without the lock: it was killed
        parts.append(f"last one failed {_when(last.get('finished_at') or last.get('started_at'))}: "
                     f"{last.get('error', 'killed')}")
    parts.append(f"wanted: {wanted} (starts with the next merge, or `tagscope index rebuild`)" if wanted
                 else "none needed")
    return "; ".join(parts)


def _when(timestamp: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "?"

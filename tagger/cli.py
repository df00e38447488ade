"""The ``tagscope`` command line: tag, search, serve, status, labels, db, worker, synth, index."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from mkt.errors import TagscopeError

log = logging.getLogger("tagscope")


def _fail_cleanly(fn: Callable) -> Callable:
    """User errors become one line on stderr and exit status 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TagscopeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: finished batches are stored; run the same command again to resume",
                       err=True)
            sys.exit(130)

    return wrapper


def _settings(ctx: click.Context, **overrides: Any):
    from tagger.config import load_settings

    base = ctx.find_root().obj or {}
    return load_settings(**{**base, **overrides})


def _db(settings):
    from tagger.db import get_database

    return get_database(settings.db_url)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Data directory (TAGSCOPE_HOME).")
@click.option("--database-url", help="SQLAlchemy URL (TAGSCOPE_DATABASE_URL).")
@click.option("--broker-url", help="Celery broker URL, or 'embedded' (TAGSCOPE_BROKER_URL).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None, broker_url: str | None,
        verbose: int) -> None:
    """Tagscope: tag photo collections with open-vocabulary labels and search them by any text."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"home": home, "database_url": database_url, "broker_url": broker_url}


# -- tag -----------------------------------------------------------------------------------------

@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", help="Model spec (TAGSCOPE_MODEL): open_clip:ARCH:PRETRAINED, mkt:PATH, synthetic.")
@click.option("--batch-size", type=int, help="Images per inference batch.")
@click.option("--loader-workers", type=int, help="DataLoader processes decoding images.")
@click.option("--top-n", type=int, help="Tags stored per image at most.")
@click.option("--min-score", type=float, help="Only store tags scoring at least this.")
@click.option("--device", help="cpu, cuda, cuda:1 ...")
@click.option("--retry-failed", is_flag=True, help="Try failed images again.")
@click.option("--retag", is_flag=True, help="Tag finished images again (e.g. after adding labels).")
@click.option("--wait/--no-wait", default=True, help="With a broker: wait for the workers to finish.")
@click.pass_context
@_fail_cleanly
def tag(ctx: click.Context, paths: tuple[str, ...], model: str | None, batch_size: int | None,
        loader_workers: int | None, top_n: int | None, min_score: float | None, device: str | None,
        retry_failed: bool, retag: bool, wait: bool) -> None:
    """Register, tag, embed and index the images under PATHS (resumable)."""
    from tagger.jobs import run_tag_job

    settings = _settings(ctx, model=model, batch_size=batch_size, loader_workers=loader_workers, top_n=top_n,
                         min_score=min_score, device=device)
    for p in paths:
        if not os.path.exists(p):
            raise TagscopeError(f"{p} does not exist: pass a folder or image file to tag")
    from mkt.specs import check_offline_weights, parse_spec

    check_offline_weights(parse_spec(settings.model))  # before seconds of imports
    summary = run_tag_job(settings, paths, retry_failed=retry_failed, retag=retag, wait=wait,
                          echo=lambda msg: click.echo(msg, err=True))
    click.echo(summary)


# -- search ---------------------------------------------------------------------------------------

@cli.command()
@click.argument("text")
@click.option("-k", "--top-k", "k", type=int, default=20, show_default=True, help="Results to return.")
@click.option("--model", help="Model spec (default: the one the collection was tagged with).")
@click.option("--min-score", type=float, help="Relevance cutoff: only results scoring at least this.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {query, results: [{image_id, path, score}]}.")
@click.pass_context
@_fail_cleanly
def search(ctx: click.Context, text: str, k: int, model: str | None, min_score: float | None, as_json: bool) -> None:
    """Rank tagged images by any label TEXT, seen in training or not."""
    from indexer.search import Searcher, parse_min_score

    settings = _collection_settings(ctx, model)
    hits = Searcher(settings).search(text, k, parse_min_score(min_score))
    if as_json:
        click.echo(json.dumps({"query": text, "results": [h.to_json() for h in hits]}, ensure_ascii=False))
        return
    if not hits:
        click.echo("no results: is the collection tagged with this model? (tagscope status)", err=True)
    for rank, h in enumerate(hits, 1):
        click.echo(f"{rank:3d}  {h.score:.3f}  {h.path}")


def _collection_settings(ctx: click.Context, model: str | None):
    """Settings for searching: the model the collection was tagged with, unless one is named."""
    from tagger.status import collection_status

    settings = _settings(ctx, model=model)
    current = collection_status(settings, max_failures=0)["model"]
    if current is None:
        return settings
    named = model or os.environ.get("TAGSCOPE_MODEL")
    if not named:
        return settings.replace(model=current["spec"])
    if settings.model != current["spec"]:
        raise TagscopeError(f"the collection is tagged with {current['spec']}, not {settings.model}: "
                            f"pass --model {current['spec']} or re-tag with this model")
    return settings


# -- serve ----------------------------------------------------------------------------------------

@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, type=int, show_default=True)
@click.option("--model", help="Model spec (default: the one the collection was tagged with).")
@click.pass_context
@_fail_cleanly
def serve(ctx: click.Context, host: str, port: int, model: str | None) -> None:
    """Serve the search UI and JSON API."""
    from web import create_app

    settings = _collection_settings(ctx, model)
    app = create_app(settings)
    click.echo(f"Tagscope on http://{host}:{port}  (model {settings.model}; Ctrl-C to stop)", err=True)
    app.run(host=host, port=port, threaded=True, use_reloader=False)


# -- status ---------------------------------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_fail_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Report the collection: image counts, labels, model version, index size, failures."""
    from tagger.status import collection_status

    st = collection_status(_settings(ctx))
    if as_json:
        click.echo(json.dumps(st, indent=1, ensure_ascii=False))
        return
    im = st["images"]
    click.echo(f"images   {im['total']} total: {im['tagged']} tagged, {im['failed']} failed, "
               f"{im['pending']} pending, {im['duplicates']} duplicates, {im['missing']} missing")
    click.echo(f"labels   {st['labels']}")
    model = st["model"]
    click.echo(f"model    {model['spec']} (version {model['version']})" if model else "model    none yet")
    click.echo(f"index    {st['index']['size']} vectors" + (f" in {st['index']['path']}" if st["index"]["path"]
                                                          else ""))
    if st["last_job"]:
        j = st["last_job"]
        click.echo(f"last job #{j['id']} {j['kind']} {j['state']}: {j['done']}/{j['total']} done, "
                   f"{j['failed']} failed")
    for f in st["failures"]:
        click.echo(f"failed   {f['path']}: {f['error']}")


# -- labels ---------------------------------------------------------------------------------------

@cli.group()
def labels() -> None:
    """Manage the label vocabulary that tagging scores (search needs no vocabulary)."""


@labels.command("add")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@_fail_cleanly
def labels_add(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Add label NAMES (re-tag with `tagscope tag --retag` to score them on tagged images)."""
    from tagger.pipeline import seed_labels

    added = seed_labels(_db(_settings(ctx)), names, source="user")
    click.echo(f"added {added} label(s), {len(names) - added} already present")


@labels.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
@_fail_cleanly
def labels_import(ctx: click.Context, file: str) -> None:
    """Add the labels in FILE (one per line; '#' starts a comment)."""
    from mkt.data import read_label_list
    from tagger.pipeline import seed_labels

    names = read_label_list(file)
    added = seed_labels(_db(_settings(ctx)), names, source="import")
    click.echo(f"added {added} label(s) from {file}, {len(names) - added} already present")


@labels.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@_fail_cleanly
def labels_list(ctx: click.Context, as_json: bool) -> None:
    """List the vocabulary."""
    from sqlalchemy import select

    from tagger.db import Label

    with _db(_settings(ctx)).session() as s:
        rows = s.execute(select(Label.name, Label.source).order_by(Label.id)).all()
    if as_json:
        click.echo(json.dumps([{"name": n, "source": src} for n, src in rows], ensure_ascii=False))
    else:
        for n, _ in rows:
            click.echo(n)


# -- db -------------------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.argument("revision", default="head")
@click.pass_context
@_fail_cleanly
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from tagger.db import get_database

    settings = _settings(ctx)
    database = get_database(settings.db_url, migrate=False)
    before = database.current_revision()
    database.upgrade(revision)
    click.echo(f"database {before or 'empty'} -> {database.current_revision()}")


@db.command("current")
@click.pass_context
@_fail_cleanly
def db_current(ctx: click.Context) -> None:
    """Print the schema revision of the database."""
    from tagger.db import get_database

    click.echo(get_database(_settings(ctx).db_url, migrate=False).current_revision() or "empty")


# -- worker ---------------------------------------------------------------------------------------

@cli.command(context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", type=int, default=1, show_default=True,
              help="Worker processes; keep 1 per GPU (each loads the model).")
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
@_fail_cleanly
def worker(ctx: click.Context, concurrency: int, celery_args: tuple[str, ...]) -> None:
    """Start a Celery worker that tags batches (needs TAGSCOPE_BROKER_URL, or 'embedded')."""
    from tagger.celery_app import TASK_QUEUE, create_celery_app

    settings = _settings(ctx)
    if not settings.broker_url:
        raise TagscopeError("no broker configured: set TAGSCOPE_BROKER_URL=embedded (no server needed), "
                            "or redis://HOST:6379/0, or amqp://USER:PASS@HOST//")
    _db(settings)  # migrate / check the schema before taking work
    app = create_celery_app(settings)
    # Solo pool: the task itself starts DataLoader processes, which a prefork child may not do.
    pool = "solo" if concurrency == 1 else "threads"
    argv = ["worker", f"--pool={pool}", f"--concurrency={concurrency}", "-Q", TASK_QUEUE,
            "--loglevel=INFO", *celery_args]
    app.worker_main(argv)


# -- index ----------------------------------------------------------------------------------------

@cli.group()
def index() -> None:
    """The vector index."""


@index.command("sync")
@click.option("--model", help="Model spec.")
@click.pass_context
@_fail_cleanly
def index_sync(ctx: click.Context, model: str | None) -> None:
    """Merge embeddings that workers spooled into the index."""
    from tagger.pipeline import get_model, sync_index

    settings = _settings(ctx, model=model)
    tm = get_model(settings.model, "cpu")
    n = sync_index(settings, tm.version, tm.embed_dim)
    click.echo(f"merged {n} vectors")


# -- synthetic world ------------------------------------------------------------------------------

@cli.group()
def synth() -> None:
    """The synthetic world: generated images for demos, tests and benchmarks."""


@synth.command("generate")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--n", type=int, default=500, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True)
@_fail_cleanly
def synth_generate(out: str, n: int, seed: int) -> None:
    """Write N images and labels.jsonl to OUT."""
    from mkt.synthetic import generate

    if n < 1:
        raise TagscopeError("--n must be at least 1")
    t0 = time.time()
    generate(out, n=n, seed=seed)
    click.echo(f"wrote {n} images and labels.jsonl to {out} in {time.time() - t0:.1f}s")


@synth.command("pretrain")
@click.option("--out", type=click.Path(dir_okay=False), default="mkt/assets/synthetic.pt", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, help="Training steps (default: the shipped checkpoint's).")
@click.option("--batch-size", type=int)
@click.option("--lr", type=float)
@_fail_cleanly
def synth_pretrain(out: str, seed: int, steps: int | None, batch_size: int | None, lr: float | None) -> None:
    """Pretrain the tiny CLIP contrastively on the synthetic world (CPU, minutes)."""
    from mkt.pretrain_synthetic import pretrain

    kwargs = {k: v for k, v in {"steps": steps, "batch_size": batch_size, "lr": lr}.items() if v is not None}
    result = pretrain(out, seed=seed, **kwargs)
    click.echo(json.dumps(result, indent=1, default=str))


# -- MKT training and evaluation ------------------------------------------------------------------

@cli.group()
def train() -> None:
    """Train MKT: `stage1` (image side) then `stage2` (prompt). `tagscope train stage1 -h` for options;
    `torchrun --nproc_per_node=N -m mkt.train stage1 ...` for several GPUs."""


@train.command("stage1", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_stage1(args: tuple[str, ...]) -> None:
    """Stage 1: fine-tune the image tower (ranking + distillation). Options: -h."""
    from mkt.train import main as train_main

    sys.exit(train_main(["stage1", *args]))


@train.command("stage2", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def train_stage2(args: tuple[str, ...]) -> None:
    """Stage 2: prompt tuning with the image side frozen. Options: -h."""
    from mkt.train import main as train_main

    sys.exit(train_main(["stage2", *args]))


@cli.command("eval", context_settings={"ignore_unknown_options": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def evaluate_cmd(args: tuple[str, ...]) -> None:
    """ZSL/GZSL mAP and F1@K of a model on a labelled set. Options: -h."""
    from mkt.evaluate import main as eval_main

    sys.exit(eval_main(list(args)))


@cli.group()
def data() -> None:
    """Data sets for training and evaluation."""


@data.command("nus-wide")
@click.option("--biam-features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with nus_wide_train.h5 and nus_wide_test.h5 (BiAM release).")
@click.option("--biam-names", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder with img_names.pkl and test_img_names.pkl.")
@click.option("--taglist", required=True, type=click.Path(exists=True, dir_okay=False), help="TagList1k.txt")
@click.option("--concepts", required=True, type=click.Path(exists=True, dir_okay=False), help="Concepts81.txt")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@_fail_cleanly
def data_nus_wide(biam_features: str, biam_names: str, taglist: str, concepts: str, out: str) -> None:
    """Convert BiAM's NUS-WIDE annotations to train.jsonl / test.jsonl / seen.txt / unseen.txt."""
    from mkt.data import convert_biam

    counts = convert_biam(biam_features, biam_names, taglist, concepts, out)
    click.echo(f"wrote {counts['train']} training and {counts['test']} test images to {out}")


# -- demo -----------------------------------------------------------------------------------------

@cli.command()
@click.option("--n", type=int, default=400, show_default=True, help="Images in the demo collection.")
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--serve/--no-serve", default=True, help="Start the web UI afterwards.")
@click.pass_context
@_fail_cleanly
def demo(ctx: click.Context, n: int, port: int, serve: bool) -> None:
    """Generate a synthetic collection, tag it with the bundled model and serve search."""
    from mkt.synthetic import generate
    from tagger.jobs import run_tag_job

    settings = _settings(ctx, model="synthetic")
    photos = settings.home / "demo-photos"
    if not (photos / "labels.jsonl").exists():
        click.echo(f"generating {n} synthetic images in {photos} ...", err=True)
        generate(photos, n=n, seed=0)
        # A few broken files, as real folders have: they are recorded as failed.
        (photos / "broken-empty.jpg").write_bytes(b"")
        (photos / "broken-notes.png").write_text("not an image")
    click.echo(run_tag_job(settings, [str(photos)], echo=lambda m: click.echo(m, err=True)))
    if serve:
        from web import create_app

        click.echo(f"search it at http://127.0.0.1:{port}  (try: red circle, striped background, "
                   "green thing; Ctrl-C to stop)", err=True)
        create_app(settings).run(host="127.0.0.1", port=port, threaded=True, use_reloader=False)


def main() -> None:
    cli(prog_name="tagscope")


if __name__ == "__main__":
    main()

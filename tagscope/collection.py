"""The commands people run on a collection: tag, search, serve, status, and the demo.

Heavy modules (torch, open_clip, the tagger) are imported inside the commands, so that
``--help`` and errors a user can fix come back at once.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import click

from core.errors import TagscopeError
from core.modelspec import check_offline_weights
from core.settings import Settings
from tagscope.common import database, fail_cleanly, heavy_imports, settings_for
from tagscope.filter_options import filter_options, parse_filters
from tagscope.output import echo_rows

if TYPE_CHECKING:
    from indexer.search.filters import Filters


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--model", help="Model spec (TAGSCOPE_MODEL): open_clip:ARCH:PRETRAINED, mkt:PATH, synthetic.")
@click.option("--batch-size", type=int, help="Images per inference batch (in-process tagging; workers use theirs).")
@click.option("--loader-workers", type=int, help="Decode processes (in-process tagging; 0: decode here).")
@click.option("--top-n", type=int, help="Tags stored per image at most.")
@click.option("--min-score", type=float, help="Only store tags scoring at least this.")
@click.option("--device", help="cpu, cuda, cuda:1 ... (in-process tagging; workers use their own).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnx", "openvino"]),
              help="Where the image tower runs (TAGSCOPE_RUNTIME, auto: ONNX Runtime int8 on a CPU, PyTorch on a GPU).")
@click.option("--retry-failed", is_flag=True, help="Try failed images again.")
@click.option("--retag", is_flag=True, help="Tag finished images again (e.g. after adding labels).")
@click.option("--empty-ok", is_flag=True,
              help="A folder that holds no photos now marks its registered ones missing (without it, an empty "
                   "folder is taken for an unmounted drive and left alone).")
@click.option("--wait/--no-wait", default=True, help="With a broker: wait for the workers to finish.")
@click.option("--ocr/--no-ocr", default=None,
              help="Read the words in the photos too, or not (TAGSCOPE_OCR; default auto: when rapidocr can be "
                   "imported). With --ocr, tagged photos not read yet are read by a text job, not re-embedded.")
@click.pass_context
@fail_cleanly
def tag(ctx: click.Context, paths: tuple[str, ...], model: str | None, batch_size: int | None,
        loader_workers: int | None, top_n: int | None, min_score: float | None, device: str | None,
        runtime: str | None, retry_failed: bool, retag: bool, empty_ok: bool, wait: bool, ocr: bool | None) -> None:
    """Register, tag, embed and index the images under PATHS (resumable); read the words in them (OCR)."""
    settings = settings_for(ctx, model=model, batch_size=batch_size, loader_workers=loader_workers, top_n=top_n,
                            min_score=min_score, device=device, runtime=runtime,
                            ocr=None if ocr is None else ("1" if ocr else "0"))
    for p in paths:
        if not os.path.exists(p):
            raise TagscopeError(f"{p} does not exist: pass a folder or image file to tag")
    check_offline_weights(settings.tagging_model, probe_network=True)  # before seconds of imports
    with heavy_imports():
        from tagger.jobs.run import run_job

    summary = run_job(settings, paths, retry_failed=retry_failed, retag=retag, empty_ok=empty_ok, wait=wait,
                      echo=lambda msg: click.echo(msg, err=True))
    click.echo(summary)


@click.command()
@click.argument("text", required=False)
@click.option("-k", "--top-k", "k", type=int, default=20, show_default=True, help="Results to return (1 to 1000).")
@click.option("--model", help="Model spec (default: the one the collection was tagged with).")
@click.option("--min-score", type=float, help="Relevance cutoff: only results scoring at least this.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {query, results: [{image_id, path, score}]}.")
@filter_options
@click.pass_context
@fail_cleanly
def search(ctx: click.Context, text: str | None, k: int, model: str | None, min_score: float | None, as_json: bool,
           sort: str | None, **filter_values: str | None) -> None:
    """Rank tagged images by any label TEXT, seen in training or not, among those passing the filters.

    TEXT is one text, or parts with operators: `beach + sunset` (both), `dog -night` or `dog NOT
    night` (without what matches "night"), `2:beach + sunset` (weights), `text:"cafe olympia"` (the
    photos whose text, read by OCR, holds these words; -text:word without them). A photo showing a
    plain TEXT's words matches too, raised; the words found are shown in [brackets]. Without TEXT,
    lists the photos passing the filters by date (newest first unless --sort oldest).

    Asks the `tagscope serve` running on this home when there is one (a fraction of a second),
    else searches in this process (seconds: torch, the model and the index load first)."""
    filters, sort = parse_filters(filter_values, sort)
    settings = settings_for(ctx, model=model)
    if text is None and not filters and sort is None:
        raise TagscopeError('give a TEXT to search for (e.g. "red bicycle"), or filters / --sort newest to list '
                            "photos by date")
    run_search(settings, text, k, min_score, filters, as_json, sort)


def run_search(settings: Settings, text: str | None, k: int, min_score: float | None, filters: Filters, as_json: bool,
               sort: str | None = None) -> None:
    """What `tagscope search` does with its arguments (`tagscope saved run NAME` too): ask the running
    server, else search in this process, and print the hits. A ``sort`` other than relevance is passed on."""
    from indexer.search.checks import check_k

    k = check_k(k)  # before the server or the model: -k -5 is one line, not an unlimited listing
    given = {name: value for name, value in filters.to_json().items() if value is not None}
    order = {"sort": sort} if sort not in (None, "relevance") or (text is None and sort) else {}
    hits = _ask_server(settings, text, k, min_score, {**given, **order})
    if hits is None:
        if settings.model is not None:
            check_offline_weights(settings.model, probe_network=True)  # before seconds of imports
        from indexer.search.checks import parse_min_score
        from indexer.search.searcher import Searcher
        from tagger.decisions import ensure_decided

        searcher = Searcher(settings)
        ensure_decided(settings, searcher.version_id())  # the tag filter and -label parts read the rules
        results = searcher.find(text, k=k, min_score=parse_min_score(min_score), filters=filters, **order)
        hits = [h.to_json() for h in results.hits]
        if searcher.notice:  # a damaged index: answered from the store while it is rebuilt
            click.echo(f"note: {searcher.notice}", err=True)
    echo_rows(list(enumerate(hits, 1)), _hit_line, as_json=as_json, document={"query": text, "results": hits},
              empty="no results: is the collection tagged with this model? (tagscope status)")
    if not as_json and any(h.get("match") for h in hits):
        click.echo("* matches the text (a cutoff calibrated on this collection); the others are only the nearest",
                   err=True)


def _hit_line(ranked: tuple[int, dict]) -> str:
    rank, h = ranked
    extra = "" if h.get("frame_s") is None else f"  (at {int(h['frame_s'] // 60)}:{int(h['frame_s'] % 60):02d})"
    extra += f"  (+{len(h['stack'])}: {', '.join(h['stack'])})" if h.get("stack") else ""
    extra += f"  [{' '.join(h['words'])}]" if h.get("words") else ""  # the words found in its text (OCR)
    score = f"{h['score']:.3f}" if h.get("score") is not None else (h.get("taken") or "")[:16].replace("T", " ")
    return f"{rank:3d} {'*' if h.get('match') else ' '} {score}  {h['path']}{extra}"


def _ask_server(settings: Settings, text: str, k: int, min_score: float | None,
                filters: dict[str, str]) -> list[dict] | None:
    from tagscope.remote import remote_search, running_server

    url = running_server(settings)
    return remote_search(url, text, k, min_score, filters, token=settings.access_token) if url else None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; beyond loopback needs --allow-remote and TAGSCOPE_ACCESS_TOKEN.")
@click.option("--port", default=5000, type=int, show_default=True)
@click.option("--model", help="Model spec (default: the one the collection was tagged with).")
@click.option("--threads", type=int, help="Request threads of each server process (TAGSCOPE_WEB_THREADS, 8).")
@click.option("--processes", type=int,
              help="Server processes (TAGSCOPE_WEB_PROCESSES, 1): the cores a search server uses (gunicorn).")
@click.option("--runtime", type=click.Choice(["auto", "torch", "onnx", "openvino"]),
              help="TAGSCOPE_RUNTIME: other than torch, query texts go through the text tower on ONNX Runtime "
                   "(fp32: the same embeddings, faster); any collection is served, whichever runtime tagged it.")
@click.option("--allow-remote", is_flag=True, help="Allow listening beyond loopback (with an access token).")
@click.pass_context
@fail_cleanly
def serve(ctx: click.Context, host: str, port: int, model: str | None, threads: int | None,
          processes: int | None, runtime: str | None, allow_remote: bool) -> None:
    """Serve the search UI and JSON API (waitress; gunicorn with --processes above 1)."""
    settings = settings_for(ctx, model=model, web_threads=threads, web_processes=processes, runtime=runtime)
    check_listen_address(settings, host, allow_remote)
    from tagscope.serving import run_server

    run_server(settings, host, port)


def check_listen_address(settings: Settings, host: str, allow_remote: bool) -> None:
    """Loopback by default; anything else only on purpose, and never without a token."""
    from web.security import LOOPBACK_NAMES

    if host.strip("[]") in LOOPBACK_NAMES:
        return
    if not allow_remote:
        raise TagscopeError(f"--host {host} would serve your photos beyond this machine: add --allow-remote "
                            "(and set TAGSCOPE_ACCESS_TOKEN), or keep the default 127.0.0.1")
    if len(settings.access_token) < 16:
        raise TagscopeError("serving beyond loopback needs an access token of 16+ characters: set "
                            "TAGSCOPE_ACCESS_TOKEN (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def status(ctx: click.Context, as_json: bool) -> None:
    """Report the collection: image counts, labels, model version, index size, failures."""
    from tagger.status import collection_status

    st = collection_status(settings_for(ctx))
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


@click.command()
@click.argument("image_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the shape of GET /api/images/ID.")
@click.pass_context
@fail_cleanly
def show(ctx: click.Context, image_id: int, as_json: bool) -> None:
    """Show one image and its tags: those that match (a keyword's parents too), then the others
    also scored; each with its score and confidence; then the text read in it (OCR)."""
    from tagger.status import image_record

    record = image_record(database(settings_for(ctx)), image_id)
    if record is None:
        raise TagscopeError(f"no image {image_id}: `tagscope search TEXT` or `tagscope status` show image ids")
    if as_json:
        click.echo(json.dumps(record, ensure_ascii=False))
        return
    click.echo(f"{record['image_id']}  {record['status']}  {record['path']}")
    for line in _shot_lines(record):
        click.echo(f"  {line}")
    for line in _tag_lines(record["tags"]) + _text_lines(record):
        click.echo(f"  {line}")


def _tag_lines(tags: list[dict]) -> list[str]:
    """The tags as `show` prints them: "matches", then "also scored"; score, confidence, label."""
    def line(tag: dict) -> str:
        score = "    -" if tag["score"] is None else f"{tag['score']:.3f}"
        note = " (confirmed)" if tag.get("confirmed") else " (implied)" if tag.get("implied") else ""
        return f"  {score}  {tag['confidence']:.2f}  {tag['label']}{note}"

    if not tags:
        return []
    matches = [line(t) for t in tags if t["match"]]
    others = [line(t) for t in tags if not t["match"]]
    return (["matches  (score, confidence, label)", *matches] if matches else ["matches  none"]) + (
        ["also scored", *others] if others else [])


def _text_lines(record: dict) -> list[str]:
    """The words OCR read, as `show` prints them: confidence, language, (a video's frame,) the line;
    nothing when OCR never read the photo."""
    lines = record.get("text") or []
    read = record.get("text_read") or {"state": "read", "current": True}
    if record.get("text_read") is None and not lines:
        return []
    stale = "" if read["current"] else "  (the file changed since: read again on the next tagging run)"
    if read["state"] != "read":
        return [f"text     not read: {read['error']}{stale}"]
    if not lines:
        return [f"text     none found{stale}"]
    out = [f"text  (confidence, language, line){stale}"]
    for line in lines:
        at = "" if line["frame_ms"] is None else f"at {line['frame_ms'] / 1000:.1f} s  "
        out.append(f"  {line['confidence']:.2f}  {line['language'] or '-':<5} {at}{line['text']}")
    return out


def _shot_lines(record: dict) -> list[str]:
    """When, where and with what, as `show` prints them."""
    lines = []
    if record.get("taken_at"):
        lines.append(f"taken    {record['taken_at']} ({record['taken_at_source']})")
    place, gps, camera = record.get("place"), record.get("gps"), record.get("camera")
    if place or gps:
        where = ", ".join(v for v in reversed(list((place or {}).values())) if v)
        lines.append(f"place    {where}" + (f" ({gps['lat']:.5f}, {gps['lon']:.5f})" if gps else ""))
    if camera:
        lines.append("camera   " + " ".join(v for v in (camera["make"], camera["model"]) if v)
                     + (f", {camera['lens']}" if camera.get("lens") else ""))
    if record.get("media") == "video" and record.get("duration_s"):
        lines.append(f"video    {record['duration_s']:.1f} s")
    if record.get("stack"):
        lines.append("stack    " + ", ".join(record["stack"]))
    return lines


@click.command()
@click.option("--n", type=int, default=1000, show_default=True, help="Images in the demo collection.")
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--model", default="synthetic-mkt", show_default=True,
              help="synthetic-mkt: MKT trained from the bundled CLIP; synthetic: that CLIP zero-shot (to compare).")
@click.option("--serve/--no-serve", default=True, help="Start the web UI afterwards.")
@click.pass_context
@fail_cleanly
def demo(ctx: click.Context, n: int, port: int, model: str, serve: bool) -> None:
    """Generate a synthetic collection, tag it with a bundled model and serve search."""
    from mkt.factory import get_model
    from mkt.synthetic import DEMO_SEED, generate
    from tagger.jobs.run import run_job

    settings = settings_for(ctx, model=model)
    photos = settings.home / "demo-photos"
    if not (photos / "labels.jsonl").exists():
        click.echo(f"generating {n} synthetic images in {photos} ...", err=True)
        generate(photos, n=n, seed=DEMO_SEED)
        # A few broken files, as real folders have: they are recorded as failed.
        (photos / "broken-empty.jpg").write_bytes(b"")
        (photos / "broken-notes.png").write_text("not an image")
    click.echo(run_job(settings, [str(photos)], echo=lambda m: click.echo(m, err=True)))
    suggestions = get_model(settings.model).suggested_queries or DEMO_QUERIES
    click.echo(f"try: {', '.join(suggestions)}", err=True)
    if serve:
        from tagscope.serving import run_server

        run_server(settings, "127.0.0.1", port)


# Suggestions for a model that names none (the zero-shot CLIP): one of each kind of label.
DEMO_QUERIES = ("blue thing", "striped background", "star", "red circle")

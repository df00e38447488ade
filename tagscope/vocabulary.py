"""``tagscope labels``: the label vocabulary that tagging scores (search needs no vocabulary).

The tagger (and torch with it) is imported inside the commands: ``--help`` stays instant."""

from __future__ import annotations

import click
from sqlalchemy import select

from core.schema import Label
from tagscope.common import database, fail_cleanly, settings_for
from tagscope.output import echo_rows


@click.group()
def labels() -> None:
    """Manage the label vocabulary that tagging scores (search needs no vocabulary)."""


def _add(ctx: click.Context, names: list[str], source: str, where: str = "") -> None:
    """Add labels and score them for every tagged image from the stored embeddings."""
    import time

    from tagger.vocabulary import seed_labels

    settings = settings_for(ctx)
    t0 = time.time()
    added = seed_labels(database(settings), names, source=source, state="pending")
    line = f"added {len(added)} label(s){where}, {len(names) - len(added)} already present"
    click.echo(line + _scored(settings, t0))


def _scored(settings, t0: float) -> str:
    """Score what the vocabulary's change left to score (:func:`tagger.keyword_tree_store.settle`):
    the end of a command's line."""
    import time

    from tagger.keyword_tree_store import settle

    scored, again = settle(settings)  # also finishes what an interrupted run left pending
    if not (scored or again):
        return ""
    what = f"scored for {scored} tagged images" if scored else f"{again} images scored again"
    if scored and again:
        what += f" ({again} scored again)"
    return f"; {what} from stored embeddings in {time.time() - t0:.1f}s (no photo read)"


@labels.command("add")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@fail_cleanly
def labels_add(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Add label NAMES and score them for every tagged image (from stored embeddings, no photo read)."""
    from tagger.vocabulary import check_label_names

    _add(ctx, check_label_names(names), "user")


@labels.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["auto", "lightroom", "paths", "plain"]), default="auto",
              show_default=True, help="The file's format; auto detects it.")
@click.pass_context
@fail_cleanly
def labels_import(ctx: click.Context, file: str, fmt: str) -> None:
    """Import the keywords in FILE and score them like `labels add`: a Lightroom keyword export
    (tab-indented, {synonyms}, [groups]), paths (A|B|C or A/B/C, one a line) or one label a line
    ('#' starts a comment). Leaves are scored; a keyword with children is implied by them."""
    import time

    from tagger.keyword_files import read_keyword_file
    from tagger.keyword_tree_store import import_tree

    settings = settings_for(ctx)
    t0 = time.time()
    parsed = read_keyword_file(file, fmt)  # the whole file is checked before anything is written
    c = import_tree(database(settings), parsed)
    line = (f"added {c['added']} label(s) from {file} ({parsed.format}, {c['keywords']} keywords), "
            f"{c['keywords'] - c['added']} already present")
    changed = [f"{c[k]} {k}" for k in ("moved", "updated") if c[k]]
    if c["unscored"]:
        changed.append(f"{c['unscored']} now implied by their children, no longer scored")
    click.echo(line + (f" ({', '.join(changed)})" if changed else "") + _scored(settings, t0))


@labels.command("export")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.pass_context
@fail_cleanly
def labels_export(ctx: click.Context, file: str) -> None:
    """Write the vocabulary to FILE as a Lightroom keyword file (Metadata > Import Keywords reads
    it; `labels import` reads it back the same); '-' writes to standard output."""
    from core.atomic import atomic_write_bytes
    from tagger.keyword_files import format_lightroom
    from tagger.keyword_tree_store import export_tree

    tree = export_tree(database(settings_for(ctx)))
    text = format_lightroom(tree)
    if file == "-":
        click.echo(text, nl=False)
        return
    atomic_write_bytes(file, text.encode("utf-8"))
    click.echo(f"wrote {len(tree)} keywords to {file} (Lightroom keyword file)")


@labels.command("remove")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@fail_cleanly
def labels_remove(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove label NAMES and their tags; images that lose a tag get their next-best label."""
    from tagger.keyword_tree_store import remove_labels

    removed, rescored = remove_labels(settings_for(ctx), list(names))
    click.echo(f"removed {removed} label(s), {len(names) - removed} not in the vocabulary; "
               f"re-scored {rescored} images from stored embeddings")


@labels.command("set")
@click.argument("name")
@click.option("--threshold", required=True, metavar="SCORE|auto",
              help="Tags of this label match from this score up (the collection model's scale); auto: calibrated.")
@click.pass_context
@fail_cleanly
def labels_set(ctx: click.Context, name: str, threshold: str) -> None:
    """Set how one label is decided: tags of NAME match from --threshold up, or `auto` again."""
    from tagger.vocabulary import set_threshold

    label, value = set_threshold(database(settings_for(ctx)), name, threshold)
    click.echo(f"{label}: matches from {value:g} up" if value is not None else f"{label}: calibrated (auto)")


@labels.command("list")
@click.option("--tree", "as_tree", is_flag=True, help="As the keyword tree: [groups], {synonyms}, children indented.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def labels_list(ctx: click.Context, as_tree: bool, as_json: bool) -> None:
    """List the vocabulary (--tree: as the keyword tree)."""
    if as_tree:
        _list_tree(ctx, as_json)
        return
    with database(settings_for(ctx)).session() as s:
        rows = s.execute(select(Label.name, Label.source, Label.state).order_by(Label.id)).all()
    echo_rows(rows, _label_line, as_json=as_json,
              document=[{"name": n, "source": src, "state": st} for n, src, st in rows])


def _list_tree(ctx: click.Context, as_json: bool) -> None:
    from tagger.keyword_tree_store import tree_document

    roots = tree_document(database(settings_for(ctx)))
    lines: list[str] = []
    todo = [(node, 0) for node in reversed(roots)]
    while todo:
        node, depth = todo.pop()
        name = f"[{node['name']}]" if node["kind"] == "group" else node["name"]
        lines.append("  " * depth + " ".join([name, *("{" + s + "}" for s in node["synonyms"])])
                     + ("" if node["state"] == "active" else f" ({node['state']})"))
        todo.extend((child, depth + 1) for child in reversed(node["children"]))
    echo_rows(lines, str, as_json=as_json, document=roots, empty="no labels yet: `tagscope labels import FILE`")


def _label_line(row: tuple[str, str, str]) -> str:
    name, _, state = row
    return name if state == "active" else f"{name} ({state}: `tagscope labels add` finishes it)"


@labels.command("calibrate")
@click.pass_context
@fail_cleanly
def labels_calibrate(ctx: click.Context) -> None:
    """Compute again how every label is decided (its rule) for the collection's model version."""
    from tagger.decisions import recalibrate

    mv, counts = recalibrate(settings_for(ctx))
    by_source = ", ".join(f"{n} {source}" for source, n in counts.items()) or "none"
    click.echo(f"calibrated {sum(counts.values())} label(s) for {mv.spec} ({mv.version[:12]}): {by_source}")

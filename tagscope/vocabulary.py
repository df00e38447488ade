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

    from tagger.relabel import score_new_labels
    from tagger.vocabulary import seed_labels

    settings = settings_for(ctx)
    t0 = time.time()
    added = seed_labels(database(settings), names, source=source, state="pending")
    scored = score_new_labels(settings)  # also finishes labels an interrupted run left pending
    line = f"added {len(added)} label(s){where}, {len(names) - len(added)} already present"
    if scored:
        line += f"; scored for {scored} tagged images from stored embeddings in {time.time() - t0:.1f}s (no photo read)"
    click.echo(line)


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
@click.pass_context
@fail_cleanly
def labels_import(ctx: click.Context, file: str) -> None:
    """Add the labels in FILE (one per line; '#' starts a comment) and score them like `labels add`."""
    from mkt.annotations import read_label_list

    _add(ctx, read_label_list(file), "import", f" from {file}")


@labels.command("remove")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@fail_cleanly
def labels_remove(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Remove label NAMES and their tags; images that lose a tag get their next-best label."""
    from tagger.relabel import remove_labels

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
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def labels_list(ctx: click.Context, as_json: bool) -> None:
    """List the vocabulary."""
    with database(settings_for(ctx)).session() as s:
        rows = s.execute(select(Label.name, Label.source, Label.state).order_by(Label.id)).all()
    echo_rows(rows, _label_line, as_json=as_json,
              document=[{"name": n, "source": src, "state": st} for n, src, st in rows])


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

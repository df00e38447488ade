"""``tagscope labels``: the label vocabulary that tagging scores (search needs no vocabulary).

The tagger (and torch with it) is imported inside the commands: ``--help`` stays instant."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from core.db import Label
from tagscope.common import database, fail_cleanly, settings_for


@click.group()
def labels() -> None:
    """Manage the label vocabulary that tagging scores (search needs no vocabulary)."""


@labels.command("add")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
@fail_cleanly
def labels_add(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Add label NAMES (re-tag with `tagscope tag --retag` to score them on tagged images)."""
    from tagger.vocabulary import seed_labels

    added = seed_labels(database(settings_for(ctx)), names, source="user")
    click.echo(f"added {added} label(s), {len(names) - added} already present")


@labels.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.pass_context
@fail_cleanly
def labels_import(ctx: click.Context, file: str) -> None:
    """Add the labels in FILE (one per line; '#' starts a comment)."""
    from mkt.data import read_label_list
    from tagger.vocabulary import seed_labels

    names = read_label_list(file)
    added = seed_labels(database(settings_for(ctx)), names, source="import")
    click.echo(f"added {added} label(s) from {file}, {len(names) - added} already present")


@labels.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def labels_list(ctx: click.Context, as_json: bool) -> None:
    """List the vocabulary."""
    with database(settings_for(ctx)).session() as s:
        rows = s.execute(select(Label.name, Label.source).order_by(Label.id)).all()
    if as_json:
        click.echo(json.dumps([{"name": n, "source": src} for n, src in rows], ensure_ascii=False))
    else:
        for n, _ in rows:
            click.echo(n)

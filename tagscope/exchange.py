"""``tagscope export`` and ``tagscope import``: tags out to XMP sidecars, CSV or JSONL, and
keywords in from sidecars, embedded XMP and IPTC (as confirmed tags)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tagscope.common import database, fail_cleanly, settings_for

_SELECT = [click.option("--min-score", type=float, help="Only the model's tags scoring at least this."),
           click.option("--top", type=int, help="At most this many of the model's tags per photo (confirmed "
                                                "tags always go, rejected never).")]


def selection(fn):
    for option in reversed(_SELECT):
        fn = option(fn)
    return fn


@click.group("export")
def export() -> None:
    """Write tags where other photo tools read them (confirmed first, rejected never)."""


@export.command("xmp")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--style", type=click.Choice(["digikam", "adobe"]), default="digikam", show_default=True,
              help="Sidecar names: IMG_0001.jpg.xmp (digiKam, darktable) or IMG_0001.xmp (Adobe).")
@selection
@click.pass_context
@fail_cleanly
def export_xmp(ctx: click.Context, paths: tuple[str, ...], style: str, min_score: float | None,
               top: int | None) -> None:
    """Merge tags into XMP sidecars next to the photos under PATHS (dc:subject,
    lr:hierarchicalSubject, digiKam:TagsList); other tools' keywords stay, Tagscope's are replaced."""
    from tagger.exchange.tags import export_xmp as run

    click.echo(json.dumps(run(database(settings_for(ctx)), paths, style, min_score, top)))


def _table(fmt: str):
    @export.command(fmt)
    @click.argument("out", type=click.Path(dir_okay=False))
    @click.argument("paths", nargs=-1, type=click.Path(exists=True))
    @selection
    @click.pass_context
    @fail_cleanly
    def command(ctx: click.Context, out: str, paths: tuple[str, ...], min_score: float | None,
                top: int | None) -> None:
        from tagger.exchange.tags import export_table

        result = export_table(database(settings_for(ctx)), paths or ("/",), Path(out), fmt, min_score, top)
        click.echo(json.dumps(result))

    command.__doc__ = (f"Write the tags of the photos under PATHS (default: all) to OUT as {fmt.upper()} "
                       "(also an annotation file `tagscope train` reads).")
    return command


export_csv = _table("csv")
export_jsonl = _table("jsonl")


@click.group("import")
def import_() -> None:
    """Read keywords other tools wrote as confirmed tags."""


@import_.command("xmp")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_context
@fail_cleanly
def import_xmp(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Keywords of the tagged photos under PATHS (XMP sidecars, embedded XMP, IPTC) -> confirmed
    tags. Your own confirmations and rejections are never overridden."""
    from tagger.exchange.tags import import_keywords

    click.echo(json.dumps(import_keywords(database(settings_for(ctx)), paths)))

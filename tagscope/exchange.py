"""``tagscope export`` and ``tagscope import``: tags out to XMP sidecars, CSV or JSONL (by default
the matching tags and the keywords they imply), and keywords in from sidecars, embedded XMP and
IPTC (as confirmed tags, their keyword paths into the vocabulary's tree)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tagscope.common import database, fail_cleanly, settings_for

_SELECT = [click.option("--min-score", type=float,
                        help="The model's tags scoring at least this, whether they match or not (default: the "
                             "matching tags only)."),
           click.option("--top", type=int,
                        help="The N best of the model's tags per photo, whether they match or not (default: the "
                             "matching tags only)."),
           click.option("--all", "everything", is_flag=True,
                        help="Every stored tag of the model, whether it matches or not (default: the matching "
                             "tags only).")]


def selection(fn):
    for option in reversed(_SELECT):
        fn = option(fn)
    return fn


def _selection(min_score: float | None, top: int | None, everything: bool):
    from tagger.exchange.tags import Selection

    return Selection(min_score, top, everything)


@click.group("export")
def export() -> None:
    """Write tags where other photo tools read them: by default the matching tags only (confirmed
    always, rejected never) and the keywords they imply."""


@export.command("xmp")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--style", type=click.Choice(["digikam", "adobe"]), default="digikam", show_default=True,
              help="Sidecar names: IMG_0001.jpg.xmp (digiKam, darktable) or IMG_0001.xmp (Adobe).")
@selection
@click.pass_context
@fail_cleanly
def export_xmp(ctx: click.Context, paths: tuple[str, ...], style: str, min_score: float | None,
               top: int | None, everything: bool) -> None:
    """Merge the matching tags (by default) into XMP sidecars next to the photos under PATHS:
    lr:hierarchicalSubject and digiKam:TagsList with each keyword's path in your keyword tree
    (labels in no tree under the xmp_root setting, `Tagscope`), dc:subject with the keyword, its
    parents and synonyms; the words read in each photo (OCR) in tagscope:Text, a line each. Other
    tools' and your own entries stay; Tagscope's are replaced."""
    from tagger.exchange.tags import export_xmp as run

    settings = settings_for(ctx)
    chosen = _selection(min_score, top, everything)
    click.echo(json.dumps(run(database(settings), paths, style, chosen, settings.xmp_root)))


def _table(fmt: str):
    @export.command(fmt)
    @click.argument("out", type=click.Path(dir_okay=False))
    @click.argument("paths", nargs=-1, type=click.Path(exists=True))
    @selection
    @click.pass_context
    @fail_cleanly
    def command(ctx: click.Context, out: str, paths: tuple[str, ...], min_score: float | None,
                top: int | None, everything: bool) -> None:
        from tagger.exchange.tags import export_table

        chosen = _selection(min_score, top, everything)
        result = export_table(database(settings_for(ctx)), paths or ("/",), Path(out), fmt, chosen)
        click.echo(json.dumps(result))

    command.__doc__ = (f"Write the tags of the photos under PATHS (default: all) to OUT as {fmt.upper()}: by "
                       "default the matching tags and the keywords they imply, as labels (an annotation file "
                       "`tagscope train` reads); --top, --min-score or --all add the model's other tags beside "
                       "them; a text column holds the words read in each photo (OCR), a line each.")
    return command


export_csv = _table("csv")
export_jsonl = _table("jsonl")


@click.group("import")
def import_() -> None:
    """Read keywords other tools wrote as confirmed tags, and their keyword trees."""


@import_.command("xmp")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.pass_context
@fail_cleanly
def import_xmp(ctx: click.Context, paths: tuple[str, ...]) -> None:
    """Keywords of the tagged photos under PATHS (XMP sidecars, embedded XMP, IPTC) -> confirmed
    tags; the keyword paths in lr:hierarchicalSubject and digiKam:TagsList (but those under the
    xmp_root setting) join your keyword tree. Your own confirmations and rejections are never
    overridden."""
    from tagger.exchange.tags import import_keywords

    settings = settings_for(ctx)
    result = import_keywords(database(settings), paths, settings.xmp_root)
    if result["labels_added"]:  # the new keywords scored for every tagged photo from stored embeddings
        from tagger.keyword_tree_store import settle

        result["scored"] = settle(settings)[0]
    click.echo(json.dumps(result))

"""``tagscope duplicates``: groups of near-duplicate photos (resized, re-encoded, cropped copies,
bursts) from the stored embeddings. Nothing is deleted or changed: it lists them for review."""

from __future__ import annotations

import json

import click

from tagscope.common import database, fail_cleanly, settings_for
from tagscope.filter_options import filter_option


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON: the shape of GET /api/duplicates (all groups).")
@click.option("--threshold", help="Cosine similarity from which photos are near-duplicates (default: the model's; "
                                  "TAGSCOPE_DUPLICATE_THRESHOLD).")
@filter_option("folder")
@click.pass_context
@fail_cleanly
def duplicates(ctx: click.Context, as_json: bool, threshold: str | None, folder: str | None) -> None:
    """List groups of near-duplicate photos, the likely original (most pixels, then bytes) first."""
    from indexer.search.duplicates import find_duplicates
    from indexer.search.near_groups import NEIGHBOURS

    settings = settings_for(ctx)
    report = find_duplicates(database(settings), threshold, setting=settings.duplicate_threshold,
                             spec=str(settings.model) if settings.model is not None else None, folder=folder)
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    for n, group in enumerate(report.groups, 1):
        click.echo(f"group {n}: {len(group.members)} photos, similarity >= {group.similarity:.3f}")
        for m in group.members:
            size = f"{m.width}x{m.height}" if m.width and m.height else "?"
            mark = "original?" if m.original else f"{m.similarity:.3f}"
            click.echo(f"  {m.image_id:>7}  {mark:>9}  {size:>11}  {_bytes(m.size_bytes):>8}  {m.path}")
    dupes = sum(len(g.members) - 1 for g in report.groups)
    where = f" under {report.folder}" if report.folder else ""
    click.echo(f"{len(report.groups)} groups, {dupes} near-duplicates among {report.photos} photos{where} "
               f"(model {report.spec}, threshold {report.threshold:g}, {report.source}); nothing was changed",
               err=not report.groups)
    if report.crowded:
        click.echo(f"note: {report.crowded} photos have {NEIGHBOURS} or more near-duplicates each at this threshold; "
                   f"only the nearest {NEIGHBOURS} of each were compared (raise --threshold to split them less)",
                   err=True)


def _bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)

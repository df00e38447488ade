"""``tagscope models``: the collection's model versions, which one search serves, switching back."""

from __future__ import annotations

import click

from tagscope.common import database, fail_cleanly, settings_for
from tagscope.output import echo_rows


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@fail_cleanly
def models(ctx: click.Context, as_json: bool) -> None:
    """Model versions the collection is tagged with; the active one (*) is what search serves.

    Tagging with a new model builds its tags and index beside the active version's, and search
    switches to it once it covers the collection."""
    if ctx.invoked_subcommand is not None:
        return
    from tagger.versions import list_versions

    rows = list_versions(database(settings_for(ctx)))
    echo_rows(rows, _line, as_json=as_json, document={"models": rows}, indent=1, ensure_ascii=True, hint_err=False,
              empty="no model versions yet: `tagscope tag PATH` tags with the default model")


def _line(r: dict) -> str:
    return (f"{'*' if r['active'] else ' '} {r['version']}  {r['spec']}  {r['embeddings']} of "
            f"{r['tagged_images']} tagged images" + ("" if r["covers"] else " (partial)"))


@models.command("use")
@click.argument("ref")
@click.pass_context
@fail_cleanly
def use_cmd(ctx: click.Context, ref: str) -> None:
    """Serve REF (a version id, a unique prefix of one, or a spec) from now on: e.g. switch back."""
    from tagger.versions import coverage, use_version

    db = database(settings_for(ctx))
    mv = use_version(db, ref)
    have, tagged = coverage(db, mv.id)
    click.echo(f"search now serves {mv.spec} ({mv.version}): {have} of {tagged} tagged images"
               + ("" if have == tagged else "; `tagscope tag PATH --model " + mv.spec + "` tags the rest"))


@models.command("remove")
@click.argument("ref")
@click.pass_context
@fail_cleanly
def remove_cmd(ctx: click.Context, ref: str) -> None:
    """Delete a version that is not active: its tags, embeddings and index files."""
    from indexer.files import remove_files
    from tagger.versions import remove_version

    settings = settings_for(ctx)
    mv, n = remove_version(database(settings), ref)
    remove_files(settings.index_dir, mv.version)
    click.echo(f"removed {mv.spec} ({mv.version}): {n} embeddings, its tags and its index")

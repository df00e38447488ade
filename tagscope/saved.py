"""``tagscope saved``: named searches (a query with its filters and sort), the same ones the search
page lists. ``run`` searches exactly as ``tagscope search`` does (through a running server when
there is one); ``list``, ``add`` and ``remove`` only touch SQL."""

from __future__ import annotations

import json

import click

from tagscope.common import database, fail_cleanly, settings_for
from tagscope.filter_options import filter_options, parse_filters
from tagscope.output import echo_rows


@click.group()
def saved() -> None:
    """Saved searches: a named query with its filters, also listed on the search page."""


@saved.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{id, name, q, filters, sort, ...}].")
@click.pass_context
@fail_cleanly
def list_command(ctx: click.Context, as_json: bool) -> None:
    """List the saved searches by name."""
    from indexer.search import saved as store

    found = store.list_saved(database(settings_for(ctx)))
    echo_rows(found, lambda s: f"{s.name}\t{_describe(s)}", as_json=as_json, document=[s.to_json() for s in found],
              empty="no saved searches: `tagscope saved add NAME QUERY` saves one")


def _describe(s) -> str:
    text = json.dumps(s.query, ensure_ascii=False)
    text += "".join(f" --{name} {json.dumps(value, ensure_ascii=False)}" for name, value in s.filters.items())
    return text + (f" --sort {s.sort}" if s.sort != "relevance" else "")


@saved.command("add")
@click.argument("name")
@click.argument("query")
@filter_options
@click.option("--replace", is_flag=True, help="Replace the saved search of this name if there is one.")
@click.pass_context
@fail_cleanly
def add_command(ctx: click.Context, name: str, query: str, sort: str | None, replace: bool,
                **filter_values: str | None) -> None:
    """Save QUERY with its filters as NAME."""
    from indexer.search import saved as store

    filters, sort = parse_filters(filter_values, sort)
    s, created = store.save(database(settings_for(ctx)), name, query, filters.to_json(), sort, replace=replace)
    click.echo(f"{'saved' if created else 'replaced'} {s.name!r}: {_describe(s)}")


@saved.command("run")
@click.argument("name")
@click.option("-k", "--top-k", "k", type=int, default=20, show_default=True, help="Results to return (1 to 1000).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {query, results: [{image_id, path, score}]}.")
@click.pass_context
@fail_cleanly
def run_command(ctx: click.Context, name: str, k: int, as_json: bool) -> None:
    """Run the saved search NAME, as `tagscope search` runs its query and filters."""
    from indexer.search import saved as store
    from indexer.search.filters import Filters
    from tagscope.collection import run_search

    settings = settings_for(ctx)
    s = store.get(database(settings), name)
    run_search(settings, s.query, k, None, Filters.from_args(s.filters), as_json, sort=s.sort)


@saved.command("remove")
@click.argument("name")
@click.pass_context
@fail_cleanly
def remove_command(ctx: click.Context, name: str) -> None:
    """Forget the saved search NAME."""
    from indexer.search import saved as store

    s = store.remove(database(settings_for(ctx)), name)
    click.echo(f"removed {s.name!r}")

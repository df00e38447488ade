"""How a command prints what it lists: with ``--json`` one JSON document; else a line per row,
or, when there is none, a hint that names what makes some (``tagscope jobs``, ``search``, ``saved
list``, ``models``, ``schedule list``, ``labels list``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

Row = TypeVar("Row")


def echo_rows(rows: Sequence[Row], line: Callable[[Row], str], *, as_json: bool, empty: str | None = None,
              document: Any = None, indent: int | None = None, ensure_ascii: bool = False,
              hint_err: bool = True) -> None:
    """``document`` (``rows`` when None) as JSON (``indent``, ``ensure_ascii`` as :func:`json.dumps`
    takes them) with ``as_json``; else ``line(row)`` for each row, or the hint ``empty`` (if any) when
    there are none (on stderr unless ``hint_err`` is false)."""
    if as_json:
        click.echo(json.dumps(rows if document is None else document, indent=indent, ensure_ascii=ensure_ascii))
        return
    if not rows and empty is not None:
        click.echo(empty, err=hint_err)
    for row in rows:
        click.echo(line(row))

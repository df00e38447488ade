"""The search filters as command-line options, the same in every command that takes them
(``tagscope search``, ``tagscope saved add``, ``--folder`` of ``tagscope duplicates``): an option
for each filter :data:`indexer.search.filters.NAMES` names, and ``--sort``. Their values are
checked where a search and the API check them (:meth:`Filters.from_args`,
:func:`indexer.search.browse.check_sort`), so a bad one is the same one-line error everywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import click

from indexer.search.browse import check_sort
from indexer.search.filters import MEDIA_KINDS, NAMES, SORTS, Filters

Command = TypeVar("Command", bound=Callable)

HELP = {"folder": "Only photos under this folder.",
        "tag": "Only photos with this stored tag.",
        "taken": "Taken in this year, month or day, or range: 2023, 2023-07, 2023-07-01..2023-08-15.",
        "place": "In this country, region, city or neighbourhood (or country code).",
        "camera": "Camera make or model contains this.",
        "media": "Only this kind of file."}
CHOICES = {"media": MEDIA_KINDS, "sort": SORTS}  # shown in --help as click shows a choice: [photo|raw|video]
SORT_HELP = "Order: by the text's score (default), or the matches by when taken (newest/oldest)."


def _option(name: str, help_text: str) -> Callable[[Command], Command]:
    choices = CHOICES.get(name)
    return click.option(f"--{name}", help=help_text, metavar=f"[{'|'.join(choices)}]" if choices else None)


def filter_option(name: str) -> Callable[[Command], Command]:
    """The option of the filter ``name`` (one of :data:`NAMES`), for a command that takes only it."""
    return _option(name, HELP[name])


def filter_options(command: Command) -> Command:
    """Every filter's option, then ``--sort`` (in that order in ``--help``); the command takes
    ``sort`` and the filters by name, to pass to :func:`parse_filters`."""
    command = _option("sort", SORT_HELP)(command)
    for name in reversed(NAMES):
        command = filter_option(name)(command)
    return command


def parse_filters(values: Mapping[str, str | None], sort: str | None) -> tuple[Filters, str | None]:
    """The filters and the sort given, checked (:class:`core.errors.TagscopeError` naming the fix on a
    bad one); ``sort`` stays None when not given."""
    return Filters.from_args(values), None if sort is None else check_sort(sort)

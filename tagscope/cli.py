"""The ``tagscope`` command line: the product's front door. Each group of commands lives in its
own module of this package; this one only builds the root group and adds them."""

from __future__ import annotations

import gc
import logging

import click

from tagscope.admin import db, index, worker
from tagscope.collection import demo, search, serve, show, status, tag
from tagscope.common import leave, standalone
from tagscope.duplicates import duplicates
from tagscope.exchange import export, import_
from tagscope.feedback import feedback
from tagscope.jobs import beat, jobs, schedule
from tagscope.models import models
from tagscope.saved import saved
from tagscope.training import data, evaluate_cmd, synth, train
from tagscope.vocabulary import labels


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(file_okay=False), help="Data directory (TAGSCOPE_HOME).")
@click.option("--database-url", help="SQLAlchemy URL (TAGSCOPE_DATABASE_URL).")
@click.option("--broker-url", help="Celery broker URL, or 'embedded' (TAGSCOPE_BROKER_URL).")
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.pass_context
def cli(ctx: click.Context, home: str | None, database_url: str | None, broker_url: str | None,
        verbose: int) -> None:
    """Tagscope: tag photo collections with open-vocabulary labels and search them by any text."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"home": home, "database_url": database_url, "broker_url": broker_url}


for command in (tag, search, show, serve, status, jobs, schedule, models, demo, labels, db, worker, beat, index, synth,
                train, evaluate_cmd, data, feedback, export, import_, saved):
    cli.add_command(command)
cli.add_command(duplicates)


def main() -> None:
    standalone()
    try:
        cli(prog_name="tagscope")
    except SystemExit as done:  # click's way out, every command's: its files, writes and log are done
        leave(done.code)  # no module teardown, no collector passes over torch and the model (issue 23)
    finally:
        gc.freeze()  # an uncaught error's exit: spare it the collector's passes at least


if __name__ == "__main__":
    main()

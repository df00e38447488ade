"""``tagscope feedback``: confirm or reject a photo's tag from the shell, and export the verdicts
as training data."""

from __future__ import annotations

import json
from pathlib import Path

import click

from tagscope.common import database, fail_cleanly, settings_for


@click.group()
def feedback() -> None:
    """Confirm or reject tags (also on each photo's page) and export them for training."""


def _verdict(ctx: click.Context, image_id: int, label: str, verdict: str) -> None:
    from core import feedback as store
    from core.errors import TagscopeError

    db = database(settings_for(ctx))
    if verdict == "clear":
        done = store.clear(db, image_id, label)
        click.echo(f"image {image_id}: {'cleared' if done else 'no verdict on'} {label!r}")
        return
    try:
        v = store.record(db, image_id, label, verdict)
    except LookupError:
        raise TagscopeError(f"no image {image_id}: `tagscope search TEXT` shows image ids") from None
    click.echo(f"image {image_id}: {v.verdict}ed {v.label!r}")


def _verdict_command(verdict: str, help_text: str) -> click.Command:
    @feedback.command(verdict, help=help_text)
    @click.argument("image_id", type=int)
    @click.argument("label")
    @click.pass_context
    @fail_cleanly
    def command(ctx: click.Context, image_id: int, label: str) -> None:
        _verdict(ctx, image_id, label, verdict)

    return command


confirm = _verdict_command("confirm", "Confirm LABEL on the photo IMAGE_ID (adds it when the model did not tag it).")
reject = _verdict_command("reject", "Reject LABEL on the photo IMAGE_ID: it never shows again, whatever re-tags score.")
clear = _verdict_command("clear", "Forget the verdict on LABEL for the photo IMAGE_ID.")


@feedback.command("export")
@click.argument("out", type=click.Path(dir_okay=False))
@click.pass_context
@fail_cleanly
def export(ctx: click.Context, out: str) -> None:
    """Write the verdicts as a training annotation file OUT (JSONL) and OUT.labels.txt.

    Then: `tagscope train stage1 --train OUT --images / --seen OUT.labels.txt ...`"""
    from tagger.exchange.training import export_training

    result = export_training(database(settings_for(ctx)), Path(out))
    click.echo(json.dumps(result))

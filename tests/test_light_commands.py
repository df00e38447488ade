"""Commands that print SQL rows stay light: they import neither torch, open_clip nor faiss, and
the status shown on every page counts the index from its saved metadata, never loading it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from . import ROOT
from .commands import run_cli, tagscope_env

HEAVY = ("torch", "open_clip", "faiss")

# Runs one command in a fresh interpreter, then reports which heavy modules it imported.
PROBE = """
import json, sys
from tagscope.cli import cli
try:
    cli.main(sys.argv[1:], prog_name="tagscope", standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.stderr)
"""


def imported_heavy_modules(home, *args: str) -> tuple[list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *args], cwd=ROOT, capture_output=True,
                          text=True, env=tagscope_env(home, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stderr.strip().splitlines()[-1]), proc.stdout


@pytest.mark.parametrize("command", [["jobs"], ["status"], ["schedule", "list"], ["models"], ["index", "status"],
                                     ["jobs", "show", "1"], ["status", "--json"]])
def test_light_commands_import_no_torch_open_clip_or_faiss(tagged_home, command):
    heavy, out = imported_heavy_modules(tagged_home, *command)
    assert heavy == [], f"tagscope {' '.join(command)} imported {heavy}"
    assert out.strip()  # it did print the collection's rows


def test_the_status_every_page_shows_counts_the_index_from_its_metadata(tagged_home):
    """``collection_status`` (the line on every page, ``GET /api/status``) reads the size the index
    saved beside itself: no FAISS import, and the same figure as the loaded index."""
    probe = ("import json, sys\nfrom core.settings import load_settings\nfrom tagger.status import collection_status\n"
             "st = collection_status(load_settings())\n"
             f"print(json.dumps([st['index']['size'], sorted(m for m in {HEAVY!r} if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=tagscope_env(tagged_home, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr
    size, heavy = json.loads(proc.stdout)
    index = json.loads(run_cli("index", "status", "--json", home=tagged_home).stdout)[0]
    assert heavy == [] and size == index["size"] == index["stored_embeddings"] > 0

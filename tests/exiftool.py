"""Reading XMP back with an independent reader: Debian's exiftool (``libimage-exiftool-perl``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from .services import services_required

EXIFTOOL = shutil.which("exiftool")


def need_exiftool() -> None:
    """Skip (or fail, under TAGSCOPE_REQUIRE_SERVICES=1) without exiftool."""
    if EXIFTOOL is None:
        message = "exiftool missing: apt-get install -y libimage-exiftool-perl"
        pytest.fail(message) if services_required() else pytest.skip(message)


def read_back(sidecar: Path) -> dict:
    """Subject, HierarchicalSubject, TagsList (lists) and Rating of a sidecar, as exiftool reads them."""
    out = subprocess.run([EXIFTOOL, "-j", "-struct", "-XMP-dc:Subject", "-XMP-lr:HierarchicalSubject",
                          "-XMP-digiKam:TagsList", "-XMP-xmp:Rating", str(sidecar)],
                         capture_output=True, text=True, check=True, timeout=60)
    row = json.loads(out.stdout)[0]
    return {k: (v if isinstance(v, list) else [v]) if k != "Rating" else v for k, v in row.items() if k != "SourceFile"}


def write_with_exiftool(path: Path, *assignments: str) -> None:
    """Change a file's (or sidecar's) XMP as another tool would, e.g. ``-XMP-dc:Subject+=Anna``."""
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *assignments, str(path)], check=True, timeout=60)


def read_fields(path: Path, *fields: str) -> dict:
    """The named fields of a file's (or sidecar's) XMP as exiftool reads them (``-XMP-tagscope:Text``:
    Tagscope's own namespace, which exiftool reads without a config), by their tag names."""
    out = subprocess.run([EXIFTOOL, "-j", "-struct", *(f"-{f}" for f in fields), str(path)],
                         capture_output=True, text=True, check=True, timeout=60)
    return {k: v for k, v in json.loads(out.stdout)[0].items() if k != "SourceFile"}

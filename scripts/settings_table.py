"""Write the settings table of ``docs/configuration.md`` from ``core.settings``.

Each setting's documentation lives with its field of ``core.settings.Settings`` (the field's
metadata) and its environment variable in ``core.settings._ENV``; this script renders them as the
Markdown table between the two marker comments of docs/configuration.md. ``tests/test_docs.py``
fails when the file differs from what this writes.

Usage::

    python scripts/settings_table.py           # rewrite the table in docs/configuration.md
    python scripts/settings_table.py --check   # exit 1 when docs/configuration.md is out of date
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from core.settings import _ENV, SETTING_DOC, Settings  # noqa: E402

DOC_PATH = REPO_ROOT / "docs" / "configuration.md"
BEGIN = "<!-- settings table: written by scripts/settings_table.py from core/settings.py; do not edit -->"
END = "<!-- end of settings table -->"
HEADER = "| setting | environment | default and meaning |\n|---|---|---|\n"


def rows() -> list[tuple[str, str, str]]:
    """(setting, environment variable, documentation) for each field of ``Settings``, in their order."""
    return [(field.name, _ENV[field.name], field.metadata[SETTING_DOC]) for field in dataclasses.fields(Settings)]


def table() -> str:
    return HEADER + "".join(f"| `{name}` | `{env}` | {doc} |\n" for name, env, doc in rows())


def updated(text: str) -> str:
    """``text`` (docs/configuration.md) with the table between the markers replaced by :func:`table`."""
    head, begin, rest = text.partition(BEGIN + "\n")
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{DOC_PATH}: the markers {BEGIN!r} and {END!r} are missing")
    return head + begin + table() + end + tail


def main(argv: list[str]) -> int:
    text = DOC_PATH.read_text()
    new = updated(text)
    if "--check" in argv:
        if new != text:
            print(f"{DOC_PATH} is out of date: run python scripts/settings_table.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        DOC_PATH.write_text(new)
        print(f"wrote {DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The documents agree with the code: the settings table is the one ``Settings`` declares, every
document is linked from the README, and every relative link leads to a file."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from core.settings import _ENV, SETTING_DOC, Settings

from .conftest import ROOT

CONFIGURATION = ROOT / "docs" / "configuration.md"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _settings_table_script():
    spec = importlib.util.spec_from_file_location("settings_table", ROOT / "scripts" / "settings_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each row of the settings table (between its markers), header rows left out."""
    script = _settings_table_script()
    assert text.count(script.BEGIN) == 1 and text.count(script.END) == 1, "the settings table's markers"
    body = text.split(script.BEGIN, 1)[1].split(script.END, 1)[0]
    rows = [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in body.splitlines()
            if line.startswith("|")]
    return [row for row in rows if row[0] not in ("setting", "---|---|---")]


def test_every_setting_is_documented_in_code_and_named_by_its_environment_variable():
    fields = dataclasses.fields(Settings)
    assert [f.name for f in fields if not f.metadata.get(SETTING_DOC, "").strip()] == []
    assert [f.name for f in fields if re.search(r"[|\n]", f.metadata[SETTING_DOC])] == []  # one table cell
    assert {f.name: f"TAGSCOPE_{f.name.upper()}" for f in fields} == _ENV


def test_the_configuration_table_is_the_settings_and_nothing_else():
    rows = _table_rows(CONFIGURATION.read_text())
    assert all(len(row) == 3 for row in rows), rows
    written = [row[0].strip("`") for row in rows]
    declared = [f.name for f in dataclasses.fields(Settings)]
    assert sorted(written) == sorted(declared), "docs/configuration.md: rows missing or extra (python " \
                                                "scripts/settings_table.py rewrites the table)"
    assert len(set(written)) == len(written), "a setting written twice"
    for name, env, doc in rows:
        field = name.strip("`")
        assert env == f"`{_ENV[field]}`", f"{field}: environment variable"
        assert doc == next(f for f in dataclasses.fields(Settings) if f.name == field).metadata[SETTING_DOC], \
            f"{field}: its text differs from core/settings.py (python scripts/settings_table.py rewrites it)"


def test_the_configuration_document_is_what_the_script_writes():
    text = CONFIGURATION.read_text()
    assert _settings_table_script().updated(text) == text, "run python scripts/settings_table.py"


def test_the_table_check_catches_drift():
    script = _settings_table_script()
    good = script.updated(CONFIGURATION.read_text())
    stale = good.replace("| `top_n` | `TAGSCOPE_TOP_N` |", "| `top_n` | `TAGSCOPE_TOPN` |")
    assert script.updated(stale) != stale and script.updated(stale) == good
    extra = good.replace(script.END, "| `colour` | `TAGSCOPE_COLOUR` | blue |\n" + script.END)
    assert "colour" in [row[0].strip("`") for row in _table_rows(extra)]


def test_the_settings_module_points_to_the_document_instead_of_repeating_the_table():
    import core.settings

    assert "docs/configuration.md" in core.settings.__doc__
    assert "TAGSCOPE_HOME" not in core.settings.__doc__


def test_every_document_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    linked = {Path(target).name for target in re.findall(r"\]\((docs/[^)#\s]+\.md)", readme)}
    results = {"mkt-results.md", "mkt-distill-selection.md"}  # written by python -m mkt.training.experiments
    unlinked = [p.name for p in DOCUMENTS[1:] if p.name not in linked | results]
    assert not unlinked, f"README.md links no {unlinked}"


def _anchors(path: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file (code blocks left out)."""
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_relative_links_and_images_lead_to_files_and_headings():
    broken = []
    for path in DOCUMENTS:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file) if file else path
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, "links to nothing:\n" + "\n".join(broken)

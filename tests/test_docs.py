"""The documents agree with the code: the settings table is the one ``Settings`` declares, every
document is linked from the README, and every relative link leads to a file."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from core.settings import _ENV, SETTING_DOC, Settings

from . import ROOT

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


# A cell that reads as a measurement: a number with a decimal point, a unit, a ratio or a range
# ("0.43", "12 ms", "2.0x", "97%", "4,452 / 4,849", "0.30-0.40 ms"); a bare count ("10") is not one.
_NUMBER = r"[\d][\d,]*(?:\.\d+)?"
_MEASURE = re.compile(rf"^\W*(?:{_NUMBER}\s*(?:%|x|ms|s|min|h|img/s|q/s|B|KB|KiB|MB|MiB|GB|GiB)\b"
                      rf"|{_NUMBER}\.\d+|{_NUMBER}\s*[-/±]\s*{_NUMBER})")
_RAW = re.compile(r"bench-results/([\w.\-]+?)(?:\{([\w,]+)\})?(\.\w+)\b")


def _figure_cell(cell: str) -> bool:
    return bool(_MEASURE.match(cell.replace("**", "").strip()))


def _tables(text: str) -> list[tuple[int, int, list[list[str]]]]:
    """(first line, line after, data rows as cells) of each Markdown table outside code blocks."""
    lines, tables, start = text.splitlines() + [""], [], None
    fenced = False
    for n, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if line.startswith("|") and not fenced:
            start = n if start is None else start
        elif start is not None:
            rows = [[c.strip() for c in row.strip().strip("|").split("|")] for row in lines[start + 2:n]]
            tables.append((start, n, rows))
            start = None
    return tables


def _is_figure_table(rows: list[list[str]]) -> bool:
    """A column past the first whose cells are mostly measurements."""
    width = max((len(row) for row in rows), default=0)
    for col in range(1, width):
        cells = [row[col] for row in rows if len(row) > col and row[col]]
        if cells and 2 * sum(map(_figure_cell, cells)) > len(cells):
            return True
    return False


def _raw_files_named(section: str, root: Path) -> list[Path]:
    """docs/bench-results/ files a section names ({a,b} braces expanded)."""
    out = []
    for stem, braces, ext in _RAW.findall(section):
        for part in braces.split(",") if braces else [""]:
            out.append(root / "docs" / "bench-results" / f"{stem}{part}{ext}")
    return out


def figure_tables_without_raw_files(path: Path, root: Path = ROOT) -> list[str]:
    """Tables of figures in ``path`` whose section (heading to heading) names no existing raw file."""
    lines = path.read_text().splitlines()
    headings = [n for n, line in enumerate(lines) if re.match(r"#+ ", line)] + [len(lines)]
    missing = []
    for start, end, rows in _tables(path.read_text()):
        if not _is_figure_table(rows):
            continue
        top = max([h for h in headings if h <= start], default=0)
        bottom = min(h for h in headings if h >= end)
        named = _raw_files_named("\n".join(lines[top:bottom]), root)
        if not named or not all(f.is_file() for f in named):
            missing.append(f"{path.relative_to(root)}:{start + 1}: {lines[start][:70]}")
    return missing


def test_every_table_of_figures_names_its_raw_file():
    """Every figure in README and docs/ comes from a raw file in docs/bench-results/ made by the
    command shown (`python -m bench.record NAME -- COMMAND` keeps one): each table of figures sits
    in a section that links to one, and the files it names exist."""
    missing = [row for path in DOCUMENTS for row in figure_tables_without_raw_files(path)]
    assert not missing, "tables of figures without a raw file in docs/bench-results/:\n" + "\n".join(missing)


def test_the_raw_file_check_tells_figures_from_facts(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# A\n\n| run | img/s |\n|---|---|\n| one | 12.5 |\n| two | 14.0 |\n\n"
                   "# B\n\n| shape | count |\n|---|---|\n| circle | 10 |\n| star | 10 |\n\n"
                   "# C\n\nraw: bench-results/nothing-here.txt\n\n| p50 | p95 |\n|---|---|\n| 3 ms | 5 ms |\n")
    found = figure_tables_without_raw_files(doc, root=tmp_path)
    assert [row.split(":")[1] for row in found] == ["3", "19"]  # A: no raw file; C: names one that is missing


LAYER_PACKAGES = ("core", "migrations", "mkt", "indexer", "tagger", "web", "tagscope")


def _packages() -> list[Path]:
    """Every package and sub-package of the layers (a folder with an __init__.py)."""
    return sorted(init.parent for name in LAYER_PACKAGES for init in (ROOT / name).rglob("__init__.py"))


def _architecture_rows() -> dict[str, str]:
    """docs/architecture.md's floor plan: package (``core/media/``) -> its row's text."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[\w/]+/`", cells[1]):
            rows[cells[1].strip("`")] = cells[2]
    return rows


def floor_plan_gaps(root: Path, packages: list[Path], rows: dict[str, str], layout: str) -> list[str]:
    """What the floor plan leaves out: packages README.md's layout does not name, packages without
    a row in docs/architecture.md, modules their package's row does not name."""
    gaps = []
    for package in packages:
        name = package.relative_to(root).as_posix() + "/"
        if f"`{name}`" not in layout:
            gaps.append(f"README.md's layout: {name}")
        if name not in rows:
            gaps.append(f"docs/architecture.md: no row for {name}")
            continue
        gaps += [f"docs/architecture.md, row {name}: {module.name}" for module in sorted(package.glob("*.py"))
                 if module.name != "__init__.py" and f"`{module.name}`" not in rows[name]]
    return gaps


def _layout() -> str:
    return (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_the_floor_plan_names_every_package_and_module():
    """A new package without a row in docs/architecture.md, a module its row does not name, or a
    package README.md's layout leaves out fails here."""
    gaps = floor_plan_gaps(ROOT, _packages(), _architecture_rows(), _layout())
    assert not gaps, "name these (what they own):\n" + "\n".join(gaps)


def test_the_floor_plan_check_sees_a_new_package_and_module(tmp_path):
    (tmp_path / "indexer" / "faces").mkdir(parents=True)
    for name in ("__init__.py", "cluster.py"):
        (tmp_path / "indexer" / "faces" / name).write_text("")
    (tmp_path / "indexer" / "__init__.py").write_text("")
    (tmp_path / "indexer" / "store.py").write_text("")
    packages = [tmp_path / "indexer", tmp_path / "indexer" / "faces"]
    rows = {"indexer/": "the store (`store.py`)"}
    assert floor_plan_gaps(tmp_path, packages, rows, "`indexer/`") == [
        "README.md's layout: indexer/faces/", "docs/architecture.md: no row for indexer/faces/"]
    rows["indexer/faces/"] = "faces"
    assert floor_plan_gaps(tmp_path, packages, rows, "`indexer/` `indexer/faces/`") == [
        "docs/architecture.md, row indexer/faces/: cluster.py"]
    assert all(package in _packages() for package in (ROOT / "core" / "media", ROOT / "web" / "openapi"))

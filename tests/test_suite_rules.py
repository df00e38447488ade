"""The suite's own rules, read from its source: tests assert behaviour, never durations (a time
bound that a loaded or slower machine breaks is a flaky test; speed belongs in bench/). A wait
for an event with a deadline (``wait_until(..., timeout=...)``, ``time.monotonic() < deadline``)
is not a duration assertion and passes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from . import ROOT

CLOCKS = {"time", "monotonic", "perf_counter", "process_time", "time_ns", "monotonic_ns", "perf_counter_ns"}
# Names of measured times and speeds: a test that compares one with a bound asserts a duration.
DURATION_NAME = re.compile(r"(^|_)(elapsed|took|duration|durations|latency|seconds|secs|speed|speedup|speeds|"
                           r"throughput|img_s|per_s)($|_)", re.IGNORECASE)
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


def _is_clock_call(node: ast.AST) -> bool:
    """``time.monotonic()``, ``perf_counter()`` ... (a reading of a clock)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    return name in CLOCKS and (not isinstance(func, ast.Attribute) or isinstance(func.value, ast.Name))


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return ""


def _measured(node: ast.AST, timed: set[str]) -> bool:
    """Whether ``node`` is (or contains) a measured time: a difference of clock readings, or a
    name that holds one (assigned from such a difference in this module, or named like one)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Sub) and any(
                _is_clock_call(n) for side in (sub.left, sub.right) for n in ast.walk(side)):
            return True
        name = _name(sub)
        if name and (name in timed or DURATION_NAME.search(name)):
            return True
    return False


def _timed_names(tree: ast.AST) -> set[str]:
    """Names assigned a difference of clock readings (``took = time.monotonic() - t0``)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                and _measured(node.value, set()) and not _is_clock_call(node.value):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
    return names


def duration_assertions(source: str) -> list[tuple[int, str]]:
    """(line, text) of each ``assert`` that orders a measured time against a bound (against 0 it
    says only that something was measured: a rate shown, a clock that moved)."""
    tree = ast.parse(source)
    timed = _timed_names(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for compare in (n for n in ast.walk(node.test) if isinstance(n, ast.Compare)):
            sides = (compare.left, *compare.comparators)
            if any(isinstance(op, ORDERING) for op in compare.ops) and any(_measured(side, timed) for side in sides) \
                    and not any(isinstance(side, ast.Constant) and side.value == 0 for side in sides):
                found.append((node.lineno, ast.get_source_segment(source, compare) or ""))
    return found


def test_no_test_asserts_a_duration():
    offenders = [f"{path.relative_to(ROOT)}:{line}: assert {text}"
                 for path in sorted((ROOT / "tests").rglob("*.py"))
                 for line, text in duration_assertions(path.read_text())]
    assert not offenders, ("tests assert durations (a slower machine fails them): assert the behaviour the "
                           "time stood for, and measure speed in bench/\n" + "\n".join(offenders))


@pytest.mark.parametrize("source", [
    "t0 = time.monotonic()\nwork()\nassert time.monotonic() - t0 < 5\n",
    "start = time.perf_counter()\nwork()\nassert time.perf_counter() - start < 1.0\n",
    "took = time.monotonic() - restarted\nassert took < LIMIT\n",
    "proc, elapsed = run()\nassert elapsed < 5, f'took {elapsed:.1f}s'\n",
    "status, body, took = get(url)\nassert status == 503 and took < within\n",
    "assert result['latency_ms'] <= 60\n",
    "assert speeds['onnx'] > speeds['torch']\n",
])
def test_the_scan_finds_duration_assertions(source):
    assert duration_assertions(source)


@pytest.mark.parametrize("source", [
    "deadline = time.monotonic() + 60\nwhile True:\n    assert time.monotonic() < deadline, 'no answer'\n",
    "wait_until(lambda: done(), timeout=30)\nassert done()\n",
    "while time.monotonic() - start < timeout:\n    poll()\n",
    "assert hour['duration_s'] == pytest.approx(3600, abs=1)\n",
    "assert len(photos) >= 3 and score < 0.5\n",
    "assert shown['rate_img_s'] > 0\n",
])
def test_the_scan_leaves_waits_with_deadlines_and_equalities_alone(source):
    assert duration_assertions(source) == []


def test_this_file_is_read_too():
    assert Path(__file__).resolve() in {p.resolve() for p in (ROOT / "tests").rglob("*.py")}


# A data directory is copied with tests.databases.copy_home: shutil's copies open and close its
# SQLite file in this process, which drops the process's locks on it (see copy_home).
HOME_COPY = re.compile(r"shutil\.copy(?:tree|file|2)?\(\s*[\w.]*home\b")


def home_copies(source: str) -> list[int]:
    return [source.count("\n", 0, m.start()) + 1 for m in HOME_COPY.finditer(source)]


def test_no_test_copies_a_live_data_directory_file_by_file():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in sorted((ROOT / "tests").rglob("*.py"))
                 if path.name != "test_suite_rules.py" for line in home_copies(path.read_text())]
    assert not offenders, "copy a data directory with tests.databases.copy_home:\n" + "\n".join(offenders)


def test_the_home_copy_rule_finds_copies():
    assert home_copies('shutil.copytree(tagged_home, home, ignore=x)\n') == [1]
    assert home_copies('x = 1\nshutil.copytree(self.home, other)\n') == [2]
    assert home_copies('shutil.copy(SYNTHETIC_BUNDLE, bundle_path)\n') == []

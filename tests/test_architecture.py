"""The floor plan holds: layers import only downward, no two modules import each other, and
every command a message or a document names exists."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import click
import pytest

from . import ROOT

# Lowest first. A module may import its own layer and the layers below it, never above.
LAYERS = [("core", "migrations"), ("mkt",), ("indexer",), ("tagger",), ("web",), ("tagscope",)]
LAYER_OF = {package: n for n, packages in enumerate(LAYERS) for package in packages}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in LAYER_OF:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports anywhere (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            # "from a.b import c" imports a.b, and a.b.c too when c is a module
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        out |= {name for name in names if name in modules}
    return out


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) - {name} for name, path in modules.items()}


def test_the_layers_cover_every_package():
    graph = import_graph()
    assert {name.split(".")[0] for name in graph} == set(LAYER_OF)
    assert len(graph) > 40


def test_imports_run_only_down_the_layers():
    upward = [f"{module} imports {target}" for module, targets in import_graph().items() for target in targets
              if LAYER_OF[target.split(".")[0]] > LAYER_OF[module.split(".")[0]]]
    assert not upward, "imports that run back up the layers:\n" + "\n".join(sorted(upward))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other (directly or round a loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


def test_every_module_imports():
    """A moved or renamed module breaks its importers at once, not when a slow test reaches them."""
    import importlib

    failed = []
    for name in project_modules():
        if name.startswith("migrations.versions") or name in ("migrations.env", "tagscope.__main__"):
            continue  # Alembic loads these itself, in a migration context; __main__ runs the CLI
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not failed, "\n".join(failed)


def test_no_modules_import_each_other():
    assert strongly_connected(import_graph()) == []


# Rooms inside a package: each sub-package's imports run one way against its parent package's own
# modules. "up": the sub-package uses its parent's modules, which never import it; "down": the
# parent's modules use the sub-package, which never imports them. A new sub-package needs its line.
ROOM_DIRECTION = {
    "core.media": "up", "core.schema": "down", "indexer.search": "up", "migrations.versions": "up",
    "mkt.runtime": "up", "mkt.synthetic": "up", "mkt.training": "up", "tagger.exchange": "up", "tagger.jobs": "up",
    "web.openapi": "down",
}
# (parent, sub-package) loops known and not untangled yet: their imports against the direction are let through
# while they last (and must still be there: once untangled, the loop leaves this list).
OPEN_LOOPS: dict[tuple[str, str], str] = {}  # none left (mkt <-> mkt.runtime: the runtime factory moved down)


def room_of(module: str, modules: dict[str, Path]) -> str:
    """The package (folder) a module lives in: itself for a package's __init__."""
    return module if modules[module].name == "__init__.py" else module.rsplit(".", 1)[0]


def room_edges(graph: dict[str, set[str]], modules: dict[str, Path]) -> dict[tuple[str, str], list[str]]:
    """(importing room, imported room) -> the module imports that make the arrow."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            a, b = room_of(module, modules), room_of(target, modules)
            if a != b:
                edges.setdefault((a, b), []).append(f"{module} imports {target}")
    return edges


def wrong_way(edges: dict[tuple[str, str], list[str]], rooms: set[str]) -> list[str]:
    """Imports that run against their sub-package's direction, and sub-packages with no direction."""
    out = [f"{room}: no direction in ROOM_DIRECTION" for room in sorted(rooms)
           if "." in room and room not in ROOM_DIRECTION]
    for room, way in ROOM_DIRECTION.items():
        parent = room.rsplit(".", 1)[0]
        against = (parent, room) if way == "up" else (room, parent)
        if (min(room, parent), max(room, parent)) not in OPEN_LOOPS:
            out += [f"{line} (against {room}'s direction: {way})" for line in edges.get(against, [])]
    return out


def test_rooms_import_one_way():
    modules = project_modules()
    graph = import_graph()
    edges = room_edges(graph, modules)
    rooms = {room_of(m, modules) for m in graph}
    assert not (problems := wrong_way(edges, rooms)), "\n".join(problems)
    open_arrows = {(parent, room) if ROOM_DIRECTION[room] == "up" else (room, parent) for parent, room in OPEN_LOOPS}
    room_graph = {room: {b for (a, b) in edges if a == room and (a, b) not in open_arrows} for room in rooms}
    loops = strongly_connected(room_graph)
    assert not loops, "rooms that import each other:\n" + "\n".join(
        f"{' <-> '.join(group)}: " + "; ".join(line for (a, b), lines in edges.items()
                                               if a in group and b in group for line in lines) for group in loops)
    assert open_arrows <= set(edges), f"untangled: take {open_arrows - set(edges)} out of OPEN_LOOPS"


def test_the_room_check_finds_a_loop_between_a_package_and_its_sub_package():
    modules = {"a": Path("a/__init__.py"), "a.x": Path("a/x.py"), "a.jobs": Path("a/jobs/__init__.py"),
               "a.jobs.run": Path("a/jobs/run.py")}
    graph = {"a": set(), "a.x": {"a.jobs.run"}, "a.jobs": set(), "a.jobs.run": {"a.x"}}
    edges = room_edges(graph, modules)
    assert strongly_connected({"a": {"a.jobs"}, "a.jobs": {"a"}}) == [["a", "a.jobs"]]
    assert edges == {("a", "a.jobs"): ["a.x imports a.jobs.run"], ("a.jobs", "a"): ["a.jobs.run imports a.x"]}
    assert wrong_way(edges, {"a", "a.jobs"}) == ["a.jobs: no direction in ROOM_DIRECTION"]


def test_the_cycle_check_finds_a_loop():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _named_commands() -> list[tuple[str, str]]:
    """Every `tagscope ...` in backticks in the code's strings and in the documents."""
    texts = [p for p in project_modules().values()] + [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = []
    for path in texts:
        for match in re.finditer(r"`tagscope ([^`]+)`", path.read_text()):
            found.append((path.relative_to(ROOT).as_posix(), match.group(1)))
    return found


# Commands that hand every word to an argparse parser of their own: their options are that parser's.
FORWARDED = {("train", "stage1"): ("mkt.training.config", "build_parser"),
             ("train", "stage2"): ("mkt.training.config", "build_parser"),
             ("eval",): ("mkt.training.evaluate", "_parser")}


def _options(command: click.Command, path: tuple[str, ...]) -> dict[str, int]:
    """Each option string of ``command`` -> how many words it takes (-1: those up to the next option)."""
    if path in FORWARDED:
        module, name = FORWARDED[path]
        parser = getattr(importlib.import_module(module), name)()
        return {o: (1 if a.nargs is None else a.nargs if isinstance(a.nargs, int) else -1)
                for a in parser._actions for o in a.option_strings}
    return {o: 0 if (p.is_flag or p.count) else p.nargs
            for p in command.get_params(click.Context(command)) if isinstance(p, click.Option)
            for o in p.opts + p.secondary_opts}


def resolve(group: click.Group, words: list[str]) -> click.Command | None:
    """The command that ``tagscope WORDS...`` runs, or None when a subcommand or an option does not exist.

    Optional parts written ``[--json]`` or ``[--top N]`` count as written. An option that takes a value
    consumes the next word unless written ``--opt=value``; ``...`` ends the check ("and so on"), and a
    literal ``--`` too (the words after it are passed through, e.g. to Celery)."""
    command: click.Command = group
    path: tuple[str, ...] = ()
    words = [word.lstrip("[").rstrip("]") for word in words]
    while words:
        word = words.pop(0)
        if word in ("...", "--"):
            break
        if word.startswith("-") and word != "-":
            takes = _options(command, path).get(word.split("=")[0])
            if takes is None:
                return None
            if "=" not in word:
                while words and takes != 0 and not (takes < 0 and words[0].startswith("-")):
                    words.pop(0)  # the option's value(s)
                    takes -= 1
            continue
        if isinstance(command, click.Group):
            command = command.get_command(click.Context(command), word)
            if command is None:
                return None
            path += (word,)
        # else: an argument of the leaf command
    return command


def test_every_command_that_messages_and_documents_name_exists():
    from tagscope.cli import cli

    named = _named_commands()
    assert len(named) > 10
    missing = [f"{where}: tagscope {text}" for where, text in named if resolve(cli, text.split()) is None]
    assert not missing, "messages name commands that do not exist:\n" + "\n".join(missing)


@pytest.mark.parametrize("text", ["index rebuilt", "labels frobnicate", "--home x nothing", "worker --embedded",
                                  "tag PATH --no-such-flag", "jobs show 12 [--jsn]", "--nohome x tag PATH",
                                  "train stage1 --init synthetic --epoch 3"])
def test_the_command_check_catches_a_missing_command(text):
    from tagscope.cli import cli

    assert resolve(cli, text.split()) is None


@pytest.mark.parametrize("text", ["worker --device cuda:0 -- -n gpu0@%h", "tag PATH --model=synthetic --no-wait",
                                  "export xmp PATH... [--min-score S] [--top N] [--style adobe]",
                                  "search TEXT --min-score -0.1 --json", "train stage1 --crop-scale 0.5 1 --no-amp",
                                  "eval --model synthetic --k 3 5 --json", "--home DIR --database-url URL ...",
                                  "-v tag --retag ..."])
def test_the_command_check_accepts_what_exists(text):
    from tagscope.cli import cli

    assert resolve(cli, text.split()) is not None


MAX_FUNCTION_LINES, MAX_MODULE_LINES = 60, 400  # the sizes the house agreed on


def test_functions_and_modules_stay_readable():
    """No function over ~60 lines, no module over ~400, anywhere but in Alembic's migrations."""
    too_long = []
    for path in sorted(ROOT.glob("[!.]*/**/*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("migrations/", "build/")) or "/site-packages/" in rel:
            continue
        source = path.read_text()
        if source.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"module {rel}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source, rel)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"function {rel}:{node.name}: {n} lines")
    assert not too_long, "split these by meaning:\n" + "\n".join(too_long)

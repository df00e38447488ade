"""Keyword files people keep, read into a tree and written back: pure Python, no database.

Three formats, detected from the file (or named: ``--format lightroom|paths|plain``):

- **Lightroom** (Metadata > Export Keywords): one keyword a line, a child indented by exactly one
  TAB more than its parent; ``{name}`` lines are synonyms of the keyword they sit under (indented
  one TAB deeper than it, as Lightroom writes them); ``[Name]`` is an organising node (kind
  ``group``: never scored, never written as a keyword). No comments: ``#travel`` is a keyword.
- **path lists**, one path a line: ``A|B|C`` (Lightroom's ``hierarchicalSubject``) or ``A/B/C``
  (digiKam, Immich); every prefix of a path is a node. ``#`` starts a comment.
- **plain**: one label a line, ``#`` comments (the label lists of ``tagscope labels import``).

Detection: a TAB in a line's indentation, or a ``{..}`` / ``[..]`` line -> Lightroom; else a
``|`` in some line -> ``|`` paths; else a ``/`` -> ``/`` paths; else plain.

A file is read and checked whole before anything is written (:mod:`tagger.keyword_tree_store`
writes it in one transaction). Bad input raises :class:`TagscopeError` with one line naming the
file, the line and the fix: mixed tabs and spaces, an indentation that jumps a level, an empty
name, a name over 200 characters, the same keyword twice anywhere (names are unique in the
vocabulary, case-insensitively), a synonym with no keyword above it, a line over
:data:`MAX_LINE_BYTES` (read no further than the bound), text that is not UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import TagscopeError

MAX_LINE_BYTES = 4096  # a line longer than this is refused after reading this much of it
MAX_LINES = 1_000_000
MAX_NAME_CHARS = 200  # the labels.name column (tagger.vocabulary.MAX_LABEL_CHARS)
FORMATS = ("auto", "lightroom", "paths", "plain")
LIGHTROOM, PIPE, SLASH, PLAIN = "lightroom", "pipe", "slash", "plain"
KEYWORD, GROUP = "keyword", "group"  # core.schema's label kinds
SEPARATOR = {PIPE: "|", SLASH: "/"}


@dataclass
class Keyword:
    """A node of a keyword file. ``kind`` and ``synonyms`` are None where the format does not say
    (path lists, plain files): an existing label keeps its own."""

    name: str
    line: int = 0
    kind: str | None = None
    synonyms: list[str] | None = None
    children: list[Keyword] = field(default_factory=list)

    @property
    def is_group(self) -> bool:
        return self.kind == GROUP


@dataclass
class KeywordTree:
    """A parsed keyword file: its top-level keywords in the file's order, the format it was read
    in and where from (for error messages)."""

    roots: list[Keyword]
    format: str = LIGHTROOM
    source: str = "keyword file"

    def walk(self) -> Iterator[tuple[Keyword, Keyword | None, int]]:
        """Every node as (node, parent, depth), parents first, in the file's order."""
        todo: list[tuple[Keyword, Keyword | None, int]] = [(r, None, 0) for r in reversed(self.roots)]
        while todo:
            node, parent, depth = todo.pop()
            yield node, parent, depth
            todo.extend((c, node, depth + 1) for c in reversed(node.children))

    def __len__(self) -> int:
        return sum(1 for _ in self.walk())

    def find(self, name: str) -> Keyword | None:
        folded = " ".join(name.split()).lower()
        return next((n for n, _, _ in self.walk() if n.name.lower() == folded), None)


def fail(where: str, line: int, message: str) -> TagscopeError:
    return TagscopeError(f"{where} line {line}: {message}")


def read_lines(path: str | Path) -> list[tuple[int, str]]:
    """The file's lines as (line number, text without its line end), each checked for length and
    UTF-8 as it is read: a longer line is refused after :data:`MAX_LINE_BYTES` bytes of it."""
    p = Path(path)
    if not p.is_file():
        raise TagscopeError(f"keyword file {p} does not exist: give the path of a file")
    out: list[tuple[int, str]] = []
    with p.open("rb") as f:
        while True:
            raw = f.readline(MAX_LINE_BYTES + 2)
            if not raw:
                return out
            number = len(out) + 1
            content = raw.rstrip(b"\r\n")
            if len(content) > MAX_LINE_BYTES:
                raise fail(str(p), number, f"longer than {MAX_LINE_BYTES} bytes: one keyword or path a line "
                                           "(is this a keyword file?)")
            if number > MAX_LINES:
                raise fail(str(p), number, f"more than {MAX_LINES:,} lines: split the file")
            try:
                text = content.decode("utf-8")
            except UnicodeDecodeError:
                raise fail(str(p), number, "not UTF-8 text: save the file as UTF-8") from None
            out.append((number, text.removeprefix("\ufeff") if number == 1 else text))


def _bracketed(text: str) -> bool:
    return len(text) >= 2 and (text[0], text[-1]) in (("[", "]"), ("{", "}"))


def _indent(text: str) -> str:
    return text[:len(text) - len(text.lstrip(" \t"))]


def detect_format(lines: list[tuple[int, str]]) -> str:
    """Which format these lines are in (see the module's docstring)."""
    content = [t for _, t in lines if t.strip()]
    if any("\t" in _indent(t) or _bracketed(t.strip()) for t in content):
        return LIGHTROOM
    body = [t for t in content if not t.lstrip().startswith("#")]
    if any("|" in t for t in body):
        return PIPE
    return SLASH if any("/" in t for t in body) else PLAIN


def _name(raw: str, where: str, line: int) -> str:
    name = " ".join(raw.split())
    if not name:
        raise fail(where, line, "empty name: give the keyword a name or delete the line")
    if len(name) > MAX_NAME_CHARS:
        raise fail(where, line, f"name of {len(name)} characters (at most {MAX_NAME_CHARS}): {name[:40]}...; "
                                "shorten it")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise fail(where, line, f"control character in {name[:40]!r}: remove it")
    if "|" in name:
        raise fail(where, line, f"'|' in {name!r}: it separates the levels of a keyword path; rename the keyword")
    if _bracketed(name):
        raise fail(where, line, f"{name!r} is in brackets or braces, which mark groups and synonyms in "
                                "Lightroom files: rename the keyword")
    return name


class _Names:
    """The names seen so far (case-insensitively) and where: a keyword may appear once."""

    def __init__(self, where: str) -> None:
        self.where, self.lines = where, {}

    def claim(self, name: str, line: int) -> None:
        first = self.lines.setdefault(name.lower(), line)
        if first != line:
            raise fail(self.where, line, f"{name!r} is already on line {first}: a keyword appears once in the tree "
                                         "(names are unique); remove or rename one")


def _depth(text: str, where: str, line: int) -> int:
    indent = _indent(text)
    if " " in indent:
        what = "mixed tabs and spaces" if "\t" in indent else "spaces"
        raise fail(where, line, f"indented with {what}: Lightroom keyword files indent one TAB per level; "
                                "use tabs only")
    return len(indent)


def _parse_lightroom(lines: list[tuple[int, str]], where: str) -> list[Keyword]:
    roots: list[Keyword] = []
    stack: list[Keyword] = []  # stack[d]: the keyword open at depth d
    names = _Names(where)
    for number, text in lines:
        text = text.rstrip()
        if not text:
            continue
        depth = _depth(text, where, number)
        body = text[depth:]
        synonym = len(body) >= 2 and body[0] == "{" and body[-1] == "}"
        if synonym and (depth == 0 or not stack):
            raise fail(where, number, f"synonym {body} with no keyword above it: put it one TAB under its keyword")
        if depth > len(stack):
            raise fail(where, number, f"indented {depth} TABs where at most {len(stack)} fit: a child is one TAB "
                                      "deeper than its parent")
        if synonym:
            owner = stack[depth - 1]
            other = _name(body[1:-1], where, number)
            if other.lower() != owner.name.lower() and other.lower() not in map(str.lower, owner.synonyms):
                owner.synonyms.append(other)
            continue
        group = len(body) >= 2 and body[0] == "[" and body[-1] == "]"
        node = Keyword(_name(body[1:-1] if group else body, where, number), number,
                       GROUP if group else KEYWORD, [])
        names.claim(node.name, number)
        del stack[depth:]
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _parse_paths(lines: list[tuple[int, str]], separator: str, where: str) -> list[Keyword]:
    roots: list[Keyword] = []
    nodes: dict[tuple[str, ...], Keyword] = {}
    explicit: dict[tuple[str, ...], int] = {}
    names = _Names(where)
    for number, text in lines:
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        parts = [_name(part, where, number) for part in text.split(separator)]
        key = tuple(p.lower() for p in parts)
        if key in explicit:
            raise fail(where, number, f"the path {separator.join(parts)!r} is already on line {explicit[key]}: "
                                      "remove one")
        explicit[key] = number
        parent: Keyword | None = None
        for depth, name in enumerate(parts):
            node = nodes.get(key[:depth + 1])
            if node is None:
                names.claim(name, number)
                node = nodes[key[:depth + 1]] = Keyword(name, number)
                (parent.children if parent else roots).append(node)
            parent = node
    return roots


def _parse_plain(lines: list[tuple[int, str]], where: str) -> list[Keyword]:
    roots: list[Keyword] = []
    names = _Names(where)
    for number, text in lines:
        text = text.strip()
        if text and not text.startswith("#"):
            roots.append(Keyword(_name(text, where, number), number))
            names.claim(roots[-1].name, number)
    return roots


def parse_lines(lines: list[tuple[int, str]], fmt: str = "auto", where: str = "keyword file") -> KeywordTree:
    """Parse numbered lines in ``fmt`` (``auto``: detected; ``paths``: ``|`` or ``/`` as detected)."""
    if fmt not in FORMATS:
        raise TagscopeError(f"unknown keyword file format {fmt!r}: use one of {', '.join(FORMATS)}")
    found = detect_format(lines)
    if fmt == "paths":
        found = PIPE if any("|" in t for _, t in lines if not t.lstrip().startswith("#")) else SLASH
    elif fmt != "auto":
        found = fmt
    if found == LIGHTROOM:
        roots = _parse_lightroom(lines, where)
    elif found in SEPARATOR:
        roots = _parse_paths(lines, SEPARATOR[found], where)
    else:
        roots = _parse_plain(lines, where)
    return KeywordTree(roots, found, where)


def parse_text(text: str, fmt: str = "auto", where: str = "keyword file") -> KeywordTree:
    return parse_lines(list(enumerate(text.splitlines(), start=1)), fmt, where)


def read_keyword_file(path: str | Path, fmt: str = "auto") -> KeywordTree:
    """Read and check the whole file (nothing is written here)."""
    return parse_lines(read_lines(path), fmt, str(path))


def format_lightroom(tree: KeywordTree) -> str:
    """The tree as Lightroom's keyword export writes it: a TAB per level, ``[group]``, each
    keyword's ``{synonyms}`` one TAB under it before its children; a newline after every line."""
    out: list[str] = []
    for node, _, depth in tree.walk():
        out.append("\t" * depth + (f"[{node.name}]" if node.is_group else node.name) + "\n")
        out.extend("\t" * (depth + 1) + "{" + synonym + "}\n" for synonym in node.synonyms or ())
    return "".join(out)

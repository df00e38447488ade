"""The words read in a photo as its page shows them: each line's box as the points of an SVG
polygon over the photo (the SVG's view box is the upright photo's size, so it scales with the
image however large the page shows it) and the line cut into pieces, the words of the search the
page was reached from marked. A part of the query is marked only where the photo's text holds all
its words, as a text search finds them: folded (:func:`core.words.fold`: case and accents), a word
as typed or the start of a longer one, or, for words of 5 letters or more, one letter off (OCR's
usual error)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from core.errors import TagscopeError
from core.words import fold, words
from indexer.search import query as grammar

_TEXT_PART = re.compile(r'\btext:\s*(?:"([^"]*)"?|(\S+))', re.IGNORECASE)
_PIECES = re.compile(r"(\s+)")
FUZZY_FROM = 5  # letters: a word this long matches one letter off


@dataclass(frozen=True)
class PageLine:
    """One line for the page: ``points`` for the SVG polygon (None for a video's line: its frame
    is not the one shown), ``pieces`` as (text, marked), ``found``: a word of the query is in it."""

    number: int
    text: str
    confidence: float
    language: str | None
    frame_ms: int | None
    points: str | None
    pieces: list[tuple[str, bool]]

    @property
    def found(self) -> bool:
        return any(marked for _, marked in self.pieces)


def query_parts(q: str | None) -> list[list[str]]:
    """The folded words of each positive part of a query (``text:"..."`` parts as their words),
    negative parts left out; a query the grammar refuses counts as one text."""
    q = (q or "").strip()
    if not q:
        return []
    try:
        texts = [p.text for p in grammar.parse(q).positive]
    except TagscopeError:
        texts = [q]
    out = []
    for text in texts:
        quoted = [m.group(1) if m.group(1) is not None else m.group(2) for m in _TEXT_PART.finditer(text)]
        for part in [*quoted, _TEXT_PART.sub(" ", text)]:
            if words(part):
                out.append(words(part))
    return out


def _one_off(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one letter changed, added or dropped."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return a == b
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1:] == short for i in range(len(long)))


def word_matches(stored: str, asked: str) -> bool:
    """A word of the photo (folded) against a word of the query (folded)."""
    return stored.startswith(asked) or (len(asked) >= FUZZY_FROM and _one_off(stored, asked))


def _wanted(parts: list[list[str]], stored: set[str]) -> set[str]:
    """The query words to mark: those of each part whose words are all in the photo's text."""
    return {w for part in parts if all(any(word_matches(s, w) for s in stored) for w in part) for w in part}


def _points(box: list[list[float]]) -> str:
    return " ".join(f"{x:g},{y:g}" for x, y in box)


def page_lines(lines: list[dict[str, Any]], q: str | None) -> list[PageLine]:
    """A photo's lines (:func:`tagger.text_lines.lines_of`) for its page, the words of ``q`` marked."""
    stored = {w for line in lines for w in words(line["text"])}
    wanted = _wanted(query_parts(q), stored)
    out = []
    for number, line in enumerate(lines):
        pieces = [(piece, bool(piece.strip()) and any(word_matches(s, w) for s in fold(piece).split()
                                                      for w in wanted))
                  for piece in _PIECES.split(line["text"]) if piece]
        points = _points(line["box"]) if line["frame_ms"] is None and len(line["box"]) >= 3 else None
        out.append(PageLine(number, line["text"], line["confidence"], line["language"], line["frame_ms"], points,
                            pieces))
    return out

"""The query grammar: one text, or parts joined by operators.

    dog                    one text (as always)
    beach + sunset         photos matching both texts
    2:beach + sunset       weight a part (a number from 0.1 to 10, then a colon)
    dog -night             dogs, without the photos that match "night"
    dog NOT at night       the same: NOT (upper case) starts a negative part
    red car -truck -bus    any number of negative parts
    text:"cafe olympia"    photos whose text (the words OCR read in them) holds these words
    text:olympia           the same for one word; dog -text:closed, beach + text:olympia

A negative part runs to the next operator (``+``, ``-``, ``NOT``) or the end. ``-`` is an
operator only at the start of the query or after a space or ``+``, and directly before a word:
``t-shirt``, ``black-and-white`` and ``- `` stay text. ``not`` in lower case is text (CLIP's
reading of it is unreliable, which is why exclusion is an operator). A ``+`` inside a word
(``c++``) is text too: the separator is a ``+`` with a space on at least one side.

A negative part removes the photos that match its text (its calibrated cutoff), that carry it as
a stored tag, or on which a person confirmed it (:class:`indexer.search.searcher.Searcher`).
Positive parts are scored each by the model; a photo's score is their weighted mean, and it
matches when it matches every positive part. People's verdicts on the positive texts rule as on
one text (:mod:`indexer.search.feedback`): a photo rejected for one never shows, one confirmed
for one comes first and matches that part.

A ``text:`` part (lower case, its words right after the colon: in double quotes, or one word) is
a *words* part: no embedding, the photos whose text holds all its words
(:mod:`indexer.search.words`: folded, the last word a prefix too, long words one letter off).
Operators inside the quotes are words (``text:"c-3po + r2"``). A chunk may hold a text and words
parts (``dog text:beware``: both, with the chunk's sign). A words part takes no weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.errors import TagscopeError
from core.words import words as folded_words

MAX_PARTS = 8
MIN_WEIGHT, MAX_WEIGHT = 0.1, 10.0
_WEIGHT = re.compile(r"^(\d+(?:\.\d+)?|\.\d+):(?=\s*[^\W\d])")  # "2:dog", not "12:30"
_OPERATOR = re.compile(r"(?:(?<=\s)|^)(?:\+(?=\s|$)|(?<=\s)\+|-(?=\w|$)|NOT(?=\s|$))")
_QUOTED = re.compile(r'(?<![\w"])text:"[^"]*"?')  # operators inside these are words
_WORDS = re.compile(r'(?<!\S)text:(?:"([^"]*)"?|(\S*))')  # a words part in a chunk


@dataclass(frozen=True)
class Part:
    text: str
    weight: float = 1.0
    negative: bool = False
    words: bool = False  # a ``text:`` part: the words in photos, no embedding

    def to_json(self) -> dict:
        return {"text": self.text, "weight": self.weight, "negative": self.negative, "words": self.words}


@dataclass(frozen=True)
class Query:
    """A parsed query: its positive parts (at least one) and negative ones."""

    text: str
    parts: tuple[Part, ...]

    @property
    def positive(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if not p.negative)

    @property
    def negative(self) -> tuple[Part, ...]:
        return tuple(p for p in self.parts if p.negative)

    @property
    def simple(self) -> bool:
        """One positive text and nothing else: searched exactly as before operators existed."""
        return len(self.parts) == 1 and not self.parts[0].words

    def to_json(self) -> list[dict]:
        return [p.to_json() for p in self.parts]


def _tokens(text: str) -> list[tuple[str, str]]:
    """(operator, text up to the next operator) pairs; the first operator is '' (none)."""
    out: list[tuple[str, str]] = []
    start, op = 0, ""
    quoted = [m.span() for m in _QUOTED.finditer(text)]
    for m in _OPERATOR.finditer(text):
        if any(a < m.start() < b for a, b in quoted):
            continue
        out.append((op, text[start:m.start()]))
        op, start = m.group(0), m.end()
    out.append((op, text[start:]))
    return out


def _weighted(text: str, whole: str) -> tuple[str, float]:
    m = _WEIGHT.match(text)
    if not m:
        return text, 1.0
    weight = float(m.group(1))
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise TagscopeError(f"a part's weight is a number from {MIN_WEIGHT:g} to {MAX_WEIGHT:g} before a colon "
                            f"(e.g. 2:beach), got {m.group(1)}: in {whole!r}")
    return text[m.end():].strip(), weight


def parse(text: str) -> Query:
    """Parse a query already cleaned by :func:`~indexer.search.searcher.check_query`; raises
    :class:`TagscopeError` with one line naming the fix."""
    parts: list[Part] = []
    tokens = _tokens(text)
    for n, (op, chunk) in enumerate(tokens):
        chunk = chunk.strip()
        if n == 0 and not chunk and tokens[1:] and tokens[1][0] != "+":
            continue  # the query starts with an operator ("-night dog" or "NOT night dog")
        if not chunk:
            what = {"+": "'+' joins two texts: write text on both sides, e.g. beach + sunset",
                    "-": "'-' excludes the text that follows it: write it without a space, e.g. dog -night",
                    "NOT": "NOT excludes the text that follows it, e.g. dog NOT night",
                    "": "'+' joins two texts: write one before it, e.g. beach + sunset"}[op]
            raise TagscopeError(f"{what} (in {text!r})")
        chunk, weight = _weighted(chunk, text)
        if not chunk:
            raise TagscopeError(f"a weight needs a text after its colon, e.g. 2:beach (in {text!r})")
        parts.extend(_pieces(chunk, weight, op in ("-", "NOT"), text))
    if len(parts) > MAX_PARTS:
        raise TagscopeError(f"at most {MAX_PARTS} parts in a query ({len(parts)} given): search fewer texts at once")
    if not any(not p.negative for p in parts):
        raise TagscopeError(f"a query needs one text to look for besides what it excludes, e.g. dog -night "
                            f"(in {text!r})")
    if len(parts) == 1 and parts[0].weight == 1.0 and not parts[0].words:
        return Query(text, (Part(text),))  # no operator at all: the text as typed
    return Query(text, tuple(parts))


def _pieces(chunk: str, weight: float, negative: bool, whole: str) -> list[Part]:
    """A chunk's parts: its ``text:`` words parts, and the text around them (first) when any."""
    words = []
    for m in _WORDS.finditer(chunk):
        found = m.group(1) if m.group(1) is not None else m.group(2)
        if not folded_words(found):
            raise TagscopeError(f'text: needs words (letters or digits) right after its colon, e.g. '
                                f'text:"cafe olympia" or text:olympia (in {whole!r})')
        if weight != 1.0:
            raise TagscopeError(f"a text: part is found or not and takes no weight: write text:{found.split()[0]}, "
                                f"not {weight:g}:text:... (in {whole!r})")
        words.append(Part(" ".join(found.split()), negative=negative, words=True))
    rest = " ".join(_WORDS.sub(" ", chunk).split())
    return ([Part(rest, weight, negative)] if rest else []) + words

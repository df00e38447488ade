"""Photos by the words in them: full-text search of what OCR read (``photo_text.folded``) through
the database's own full-text index (migration 0013: SQLite FTS5, PostgreSQL tsvector + GIN).

A query's words are folded as the stored text is (:func:`core.words.fold`: case and accents) and
cut where the engines cut (letters and digits; ``t-shirt`` is ``t`` and ``shirt``). A photo is
found when its text (all its lines) holds every word: as typed, the last one also as the start of
a longer word (2 letters or more: ``olym`` finds ``Olympia``), and a word of ``FUZZY_FROM`` letters
or more also one letter off (a letter read wrong, missing or extra: OCR's usual error), where the
engine allows it: on SQLite from the FTS5 vocabulary (every stored word once: those sharing the
word's first two letters, and those differing in them), on PostgreSQL from the ``pg_trgm``
trigram index when the extension is there (without it, as typed and by prefix only). Each query
word keeps at most ``MAX_VARIANTS`` stored words one letter off (the commonest).

A photo's text score is the mean, over the query's words, of the best OCR confidence of a line
holding the word (a word found only one letter off counts ``FUZZY_WEIGHT`` of it): 0 to 1.

Bounded work: :func:`expand` is one query for all of a query's words (none when no word is
long enough), :func:`find` one statement for the whole query (at most ``limit`` photos back) and
:func:`found_words` one statement for a page of photos.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, case, func, literal_column, select, text
from sqlalchemy.sql.elements import ColumnElement

from core.db import Database
from core.errors import TagscopeError
from core.schema import FTS_TABLE, FTS_VOCAB, TRGM_INDEX, Embedding, Image, PhotoText
from core.sql_in import chunks, one_of
from core.words import fold
from indexer.search.filters import Filters

FUZZY_FROM = 5  # letters: a query word this long also finds stored words one letter off
PREFIX_FROM = 2  # letters: the last word this long also finds the words it starts
FUZZY_WEIGHT = 0.5  # a word found only one letter off counts this share of its line's confidence
MAX_WORDS = 16  # words in one query
MAX_VARIANTS = 32  # stored words one letter off kept per query word
SCAN = 2000  # stored words (SQLite) or lines (PostgreSQL) examined per query word for them
TRIGRAM_THRESHOLD = 0.3  # pg_trgm word similarity a line needs to be examined (one letter off in 5: 0.33)
SHOWN = 12  # words a hit shows
_TOKEN = re.compile(r"[^\W_]+")  # on folded text, what FTS5's unicode61 and PostgreSQL's parser cut
_EDGES = re.compile(r"^[\W_]+|[\W_]+$")  # punctuation around a word as read
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


def tokens(text: str) -> list[str]:
    """The words of ``text`` as the full-text engines index them: folded, letters and digits."""
    return _TOKEN.findall(fold(text))


def one_off(a: str, b: str) -> bool:
    """``a`` and ``b`` differ by exactly one letter replaced, added or removed."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    return a[i + 1:] == b[i + 1:] if len(a) == len(b) else a[i:] == b[i + 1:]


@dataclass(frozen=True)
class Term:
    """One query word: ``word`` (folded), found as the start of longer words too when ``prefix``,
    and as the stored words one letter off in ``variants``."""

    word: str
    prefix: bool = False
    variants: tuple[str, ...] = ()

    @property
    def fuzzy(self) -> bool:
        return len(self.word) >= FUZZY_FROM

    def matches(self, token: str) -> bool:
        return token == self.word or token in self.variants or (self.prefix and token.startswith(self.word))


@dataclass(frozen=True)
class WordQuery:
    """The words a query looks for in photos' text (every one of them)."""

    terms: tuple[Term, ...]

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, token: str) -> bool:
        return any(t.matches(token) for t in self.terms)


def parse(text: str, strict: bool = True) -> WordQuery:
    """The words of ``text``, the last one a prefix too; no database. ``strict``: a text with no
    word, or too many, is refused with one line naming the fix (else: an empty query)."""
    found = list(dict.fromkeys(tokens(text)))
    if not found or len(found) > MAX_WORDS:
        if not strict:
            return WordQuery(())
        if not found:
            raise TagscopeError(f'text:{text!r} holds no word to look for (letters or digits), e.g. text:"cafe"')
        raise TagscopeError(f"text: looks for at most {MAX_WORDS} words ({len(found)} given): search fewer")
    last = found[-1]
    return WordQuery(tuple(Term(w, prefix=w == last and len(w) >= PREFIX_FROM) for w in found))


def combine(queries: Sequence[WordQuery]) -> WordQuery:
    """One query holding every word of ``queries`` (``a + b``: photos with all of them)."""
    terms: dict[str, Term] = {}
    for q in queries:
        for t in q.terms:
            old = terms.get(t.word)
            terms[t.word] = t if old is None else Term(t.word, old.prefix or t.prefix,
                                                       tuple(dict.fromkeys(old.variants + t.variants)))
    return WordQuery(tuple(terms.values()))


def expand(db: Database, query: WordQuery) -> WordQuery:
    """``query`` with each long word's stored variants one letter off (one query for all its words,
    on PostgreSQL after setting pg_trgm's threshold for the transaction; none when no word is long
    enough, or on PostgreSQL without the trigram index)."""
    long = [t for t in query.terms if t.fuzzy and not t.variants]
    if not long:
        return query
    if db.is_sqlite:
        seen = _vocabulary_near(db, [t.word for t in long])
    elif _has_trigrams(db):
        seen = _lines_near(db, [t.word for t in long])
    else:
        return query
    near = {w: tuple(v for v, _ in counts.most_common(MAX_VARIANTS)) for w, counts in seen.items()}
    return WordQuery(tuple(Term(t.word, t.prefix, near.get(t.word, ())) if t in long else t for t in query.terms))


def _head_edits(word: str) -> set[str]:
    """The words one letter off ``word`` in its first two letters (the vocabulary's range on the
    first two letters finds the others)."""
    alphabet = set(_ALPHABET) | set(word)
    out = {word[1:], word[0] + word[2:]}
    for c in alphabet:
        out |= {c + word[1:], word[0] + c + word[2:], c + word, word[0] + c + word[1:]}
    out.discard(word)
    return out


def _vocabulary_near(db: Database, words: list[str]) -> dict[str, Counter]:
    """SQLite: stored words one letter off each of ``words``, with the lines holding them, from
    the FTS5 vocabulary (a range scan on the first two letters, and the head edits looked up)."""
    parts, params = [], {}
    for n, w in enumerate(words):
        edits = sorted(_head_edits(w))
        names = [f"e{n}_{m}" for m in range(len(edits))]
        params.update(zip(names, edits))
        params.update({f"lo{n}": w[:2], f"hi{n}": w[:2] + "\U0010ffff", f"short{n}": len(w) - 1,
                       f"long{n}": len(w) + 1})
        parts.append(f"SELECT * FROM (SELECT {n} AS k, term, doc FROM {FTS_VOCAB} WHERE term >= :lo{n} "
                     f"AND term < :hi{n} AND length(term) BETWEEN :short{n} AND :long{n} LIMIT {SCAN})")
        parts.append(f"SELECT {n} AS k, term, doc FROM {FTS_VOCAB} WHERE term IN "
                     f"({', '.join(':' + name for name in names)})")
    out: dict[str, Counter] = {w: Counter() for w in words}
    with db.session() as s:
        for k, term, doc in s.execute(text(" UNION ALL ".join(parts)), params):
            if one_off(words[k], term):
                out[words[k]][term] = doc
    return out


def _lines_near(db: Database, words: list[str]) -> dict[str, Counter]:
    """PostgreSQL: stored words one letter off each of ``words``, counted over the ``SCAN`` lines
    most like it by pg_trgm's word similarity (through the trigram index)."""
    parts = [f"(SELECT {n} AS k, folded FROM photo_text WHERE :w{n} <% folded "
             f"ORDER BY :w{n} <<-> folded LIMIT {SCAN})" for n in range(len(words))]
    out: dict[str, Counter] = {w: Counter() for w in words}
    with db.session() as s:
        s.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, true)"),
                  {"t": str(TRIGRAM_THRESHOLD)})
        for k, folded in s.execute(text(" UNION ALL ".join(parts)), {f"w{n}": w for n, w in enumerate(words)}):
            out[words[k]].update(t for t in _TOKEN.findall(folded) if one_off(words[k], t))
    return out


_trigrams: dict[str, bool] = {}


def _has_trigrams(db: Database) -> bool:
    """Whether this PostgreSQL database has the trigram index (pg_trgm could be created): asked
    once per process (an index added later serves after a restart)."""
    if db.url not in _trigrams:
        with db.session() as s:
            _trigrams[db.url] = s.scalar(text("SELECT count(*) FROM pg_indexes WHERE indexname = :n"),
                                         {"n": TRGM_INDEX}) > 0
    return _trigrams[db.url]


def _expression(db: Database, term: Term, variants: bool = True) -> str:
    """The full-text expression of one term: the word (a prefix too), or one of its variants."""
    if db.is_sqlite:
        alts = [f'"{term.word}"' + ("*" if term.prefix else "")] + [f'"{v}"' for v in term.variants if variants]
        return alts[0] if len(alts) == 1 else "(" + " OR ".join(alts) + ")"
    alts = [f"'{term.word}'" + (":*" if term.prefix else "")] + [f"'{v}'" for v in term.variants if variants]
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _matching(db: Database, expression: str, name: str) -> ColumnElement[bool]:
    """The condition that a photo_text line matches a full-text ``expression`` (bound as ``name``)."""
    if db.is_sqlite:
        rows = text(f"SELECT rowid FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH :{name}").bindparams(**{name: expression})
        return PhotoText.id.in_(rows.columns(literal_column("rowid")))
    simple = literal_column("'simple'")
    query = func.to_tsquery(simple, text(f":{name}").bindparams(**{name: expression}))
    return func.to_tsvector(simple, PhotoText.folded).op("@@")(query)


def _per_photo(db: Database, term: Term, n: int, among: Sequence[int] | None) -> Select:
    """``(image_id, c)``: the photos with a line holding ``term``, ``c`` its best line's confidence
    (a line holding it only one letter off: ``FUZZY_WEIGHT`` of it)."""
    confidence = PhotoText.confidence
    if term.variants:
        exact = _matching(db, _expression(db, term, variants=False), f"x{n}")
        confidence = confidence * case((exact, 1.0), else_=FUZZY_WEIGHT)
    q = (select(PhotoText.image_id.label("image_id"), func.max(confidence).label("c"))
         .where(_matching(db, _expression(db, term), f"q{n}")).group_by(PhotoText.image_id))
    return q if among is None else q.where(one_of(PhotoText.image_id, among))


def find(db: Database, query: WordQuery, version_id: int, filters: Filters | None = None,
         among: Sequence[int] | None = None, limit: int = 1000) -> dict[int, float]:
    """The photos (tagged, with the served version's embedding, passing ``filters``; among
    ``among`` when given) whose text holds every word of ``query`` (:func:`expand` it first for
    variants one letter off), best text score first: {image id: score}, at most ``limit``."""
    if not query:
        return {}
    if among is not None and len(among) > 5000:
        found: dict[int, float] = {}
        for chunk in chunks(list(among)):
            found.update(find(db, query, version_id, filters, chunk, limit))
        return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])
    subs = [_per_photo(db, t, n, among).subquery(f"word{n}") for n, t in enumerate(query.terms)]
    score = sum((sub.c.c for sub in subs[1:]), subs[0].c.c) / len(subs)
    q = select(Image.id, score.label("score"))
    for sub in subs:
        q = q.join(sub, sub.c.image_id == Image.id)
    q = q.where(Image.id.in_(select(Embedding.image_id).where(Embedding.model_version_id == version_id)))
    q = (filters or Filters()).where(q, version_id).order_by(score.desc(), Image.id).limit(limit)
    with db.session() as s:
        return {int(i): float(sc) for i, sc in s.execute(q)}


def found_words(db: Database, query: WordQuery, ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """For each of ``ids`` (a page), the words of its text that ``query`` found, as OCR read them,
    in reading order, each once (at most ``SHOWN``): one statement over the lines that match."""
    if not query or not ids:
        return {}
    anything = " OR ".join(_expression(db, t) for t in query.terms) if db.is_sqlite else \
        " | ".join(_expression(db, t) for t in query.terms)
    q = (select(PhotoText.image_id, PhotoText.text)
         .where(one_of(PhotoText.image_id, list(ids)), _matching(db, anything, "any"))
         .order_by(PhotoText.image_id, PhotoText.frame_ms, PhotoText.line, PhotoText.id))
    out: dict[int, dict[str, str]] = {}
    with db.session() as s:
        for image_id, line in s.execute(q):
            shown = out.setdefault(int(image_id), {})
            for raw in line.split():
                if len(shown) < SHOWN and any(query.matches(t) for t in tokens(raw)):
                    shown.setdefault(fold(raw), _EDGES.sub("", raw))
    return {i: tuple(w for w in words.values() if w) for i, words in out.items()}

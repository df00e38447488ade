"""What a query may be: its text, k, offset and minimum score, checked before anything loads
(no torch here: the CLI and the web check arguments with these)."""

from __future__ import annotations

import unicodedata

from core.bounds import whole_number
from core.errors import TagscopeError

MAX_K = 1000
MAX_DEPTH = 2000  # pages reach this deep into the ranking
MAX_QUERY_CHARS = 300
RERANK_POOL = 200  # candidates re-ranked by the model's own score (MKT models, approximate indexes)
MAX_POOL = 4000
SORT_POOL = 1000  # a text query sorted by date orders its matches among this many best results
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Cn"}  # controls, format (zero-width...), private, surrogates, unassigned


def parse_min_score(value: str | float | None) -> float | None:
    if value in (None, ""):
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise TagscopeError(f"min_score must be a number between -1 and 1, got {value!r}") from None
    if not -1.0 <= score <= 1.0:
        raise TagscopeError(f"min_score must be between -1 and 1 (scores are cosine similarities), got {score}")
    return score


def check_k(k: int | str | None) -> int:
    """Results per page: 1 to ``MAX_K`` (every listing and search, the CLI's ``-k`` and the API's ``k``)."""
    return whole_number(20 if k is None else k, "k", 1, MAX_K)


def check_offset(offset: int | str | None, k: int) -> int:
    """A page's first rank: 0 up to ``MAX_DEPTH - k`` (search pages through the best ``MAX_DEPTH``),
    for ``k`` results (checked too: every search and listing passes here)."""
    k = check_k(k)
    try:
        offset = int(offset or 0)
    except (TypeError, ValueError):
        raise TagscopeError(f"offset must be a whole number, got {offset!r}") from None
    if not 0 <= offset <= MAX_DEPTH - k:
        raise TagscopeError(f"offset must be between 0 and {MAX_DEPTH - k} (search pages through the best "
                            f"{MAX_DEPTH} results; narrow the query or add a filter to see others), got {offset}")
    return offset


def check_query(text: str | None, k: int | str | None) -> tuple[str, int]:
    """Validate a query; raises :class:`TagscopeError` with what to change. Invisible characters
    (controls, zero-width and format characters) are dropped; NUL and undecodable bytes (U+FFFD
    from a bad %-escape) are refused."""
    text = text or ""
    if "\x00" in text or "\ufffd" in text:
        raise TagscopeError("the query holds a NUL or bytes that are not UTF-8: type plain text")
    text = " ".join("".join(ch for ch in text if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE).split())
    if not text:
        raise TagscopeError("empty query: type a label or a description, e.g. \"red bicycle\"")
    if len(text) > MAX_QUERY_CHARS:
        raise TagscopeError(f"query too long ({len(text)} characters): keep it under {MAX_QUERY_CHARS}")
    return text, check_k(k)

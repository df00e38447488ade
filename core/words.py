"""Text as search compares it: :func:`fold` turns what OCR read (and what people type) into lower
case without accents, punctuation apart from inner apostrophes and hyphens dropped, whitespace
folded, so that "Café" matches "cafe" on SQLite and PostgreSQL alike. :func:`words` splits a
folded text into its words."""

from __future__ import annotations

import re
import unicodedata

_KEEP = re.compile(r"[^\w\s'-]+", re.UNICODE)


def fold(text: str) -> str:
    """Lower case, accents and other combining marks removed (NFKD), punctuation but inner ``'``
    and ``-`` turned into spaces, whitespace folded."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    plain = _KEEP.sub(" ", plain.replace("_", " "))
    return " ".join(w.strip("'-") for w in plain.split() if w.strip("'-"))


def words(text: str) -> list[str]:
    """The words of ``text`` once folded, in order."""
    return fold(text).split()

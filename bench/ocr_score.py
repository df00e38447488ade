"""What ``bench.ocr`` counts: the words OCR read in a photo against the words rendered in it, by
word height, compared as search compares text (:func:`core.words.fold`: case and accents folded).

A rendered word is found when one of the words read in its photo (each line's text folded and
split into words, each used once) equals it. A word read is right when it is one of the photo's
words; a wrong one counts against the height of the rendered word its line lies on (a misread),
else against ``nowhere`` (read where no word is: the background's false positives).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from bench.ocr_photos import BUCKETS
from core.words import fold

NOWHERE = "nowhere"


def bucket(height: float) -> str:
    """The height bucket of a word; a word drawn at the edge of the range whose ink measured a pixel
    beyond it counts in the end bucket."""
    for low, high in BUCKETS:
        if low <= height < high:
            return f"{low}-{high}"
    low, high = BUCKETS[0] if height < BUCKETS[0][0] else BUCKETS[-1]
    return f"{low}-{high}"


def within_one_edit(a: str, b: str) -> bool:
    """One letter changed, added or dropped (search's tolerance for words of 5+ letters)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) == 1
    short, long_ = sorted((a, b), key=len)
    i = next((k for k in range(len(short)) if short[k] != long_[k]), len(short))
    return short[i:] == long_[i + 1:]


def near(query: str, word: str) -> bool:
    return query == word or (len(query) >= 5 and within_one_edit(query, word))


@dataclass
class Read:
    """One word OCR read: folded text, its line's score and box (four corners)."""
    word: str
    score: float
    box: np.ndarray


def reads_of(lines: list[tuple[str, float, list]]) -> list[Read]:
    """A photo's OCR lines (text, score, box) as folded words."""
    return [Read(w, float(score), np.asarray(box, dtype=np.float64))
            for text, score, box in lines for w in fold(text).split()]


def _inside(point: np.ndarray, box: np.ndarray) -> bool:
    """Whether ``point`` lies in the convex quadrilateral ``box`` (corners in order)."""
    edges = [(box[(i + 1) % 4] - box[i], point - box[i]) for i in range(4)]
    signs = [e[0] * p[1] - e[1] * p[0] for e, p in edges]  # the 2-D cross product
    return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)


@dataclass
class Tally:
    """Counts by height bucket: words rendered and found (exactly, within one edit), words read right and wrong."""
    rendered: dict = field(default_factory=lambda: defaultdict(int))
    found: dict = field(default_factory=lambda: defaultdict(int))
    found_near: dict = field(default_factory=lambda: defaultdict(int))
    right: dict = field(default_factory=lambda: defaultdict(int))
    wrong: dict = field(default_factory=lambda: defaultdict(int))
    missed: list = field(default_factory=list)  # (file, word, height, angle, font, background, what was read)

    def add(self, row: dict, lines: list[tuple[str, float, list]]) -> None:
        reads = reads_of(lines)
        used: set[int] = set()
        for word in row["words"]:
            b, target = bucket(word["height"]), fold(word["text"])
            self.rendered[b] += 1
            hit = next((i for i, r in enumerate(reads) if i not in used and r.word == target), None)
            if hit is not None:
                used.add(hit)
                self.found[b] += 1
                self.right[b] += 1
                self.found_near[b] += 1
                continue
            if any(i not in used and near(target, r.word) for i, r in enumerate(reads)):
                self.found_near[b] += 1
            self.missed.append((row["file"], word["text"], round(word["height"], 1), word["angle"], word["font"],
                                row["background"], [t for t, _, _ in lines]))
        for i, r in enumerate(reads):
            if i in used:
                continue
            centre = r.box.mean(axis=0)
            under = [w for w in row["words"] if _inside(centre, np.asarray(w["box"]))]
            self.wrong[bucket(under[0]["height"]) if under else NOWHERE] += 1

    def rows(self) -> list[tuple[str, int, int, float, float, int, float]]:
        """Per bucket and the >= 20 px and all rows: (bucket, rendered, found, recall, recall within one
        edit, words read, precision)."""
        out = []
        names = [bucket((lo + hi) / 2) for lo, hi in BUCKETS]
        groups = [(n, [n]) for n in names] + [(">= 20 px", names[2:]), ("all heights", names)]
        for label, members in groups:
            n = sum(self.rendered[m] for m in members)
            found = sum(self.found[m] for m in members)
            near_ = sum(self.found_near[m] for m in members)
            right = sum(self.right[m] for m in members)
            read = right + sum(self.wrong[m] for m in members)
            out.append((label, n, found, found / n if n else float("nan"), near_ / n if n else float("nan"),
                        read, right / read if read else float("nan")))
        return out


def print_table(tally: Tally, title: str) -> None:
    print(f"\n{title}")
    print(f"{'height px':>12} {'words':>6} {'found':>6} {'recall':>7} {'<=1 edit':>9} {'read':>6} {'precision':>9}")
    for label, n, found, recall, near_, read, precision in tally.rows():
        print(f"{label:>12} {n:>6} {found:>6} {recall:>7.3f} {near_:>9.3f} {read:>6} {precision:>9.3f}")
    print(f"{'(nowhere)':>12} {'':>6} {'':>6} {'':>7} {'':>9} {tally.wrong[NOWHERE]:>6}   "
          "words read where no word is")


def recall_at_10(ranked: dict[str, list[str]], relevant: dict[str, set[str]]) -> float:
    """Mean over queries with a relevant photo of |top 10 & relevant| / min(10, |relevant|)."""
    scores = [len(set(ranked.get(q, [])[:10]) & files) / min(10, len(files)) for q, files in relevant.items() if files]
    return float(np.mean(scores)) if scores else float("nan")


def relevant_photos(truth: list[dict], min_height: float = 0.0) -> dict[str, set[str]]:
    """Folded word of the list -> the photos it is rendered in (at least ``min_height`` px high)."""
    out: dict[str, set[str]] = defaultdict(set)
    for row in truth:
        for word in row["words"]:
            if word["height"] >= min_height:
                out[fold(word["text"])].add(row["file"])
    return dict(out)


def rank_direct(lines_by_file: dict[str, list], query: str, tolerant: bool) -> list[str]:
    """The photos whose words read contain ``query`` (folded; within one edit for 5+ letters when
    ``tolerant``), best line score first: search by words done over the bench's own reads."""
    best: dict[str, float] = {}
    for file, lines in lines_by_file.items():
        for r in reads_of(lines):
            if r.word == query or (tolerant and near(query, r.word)):
                best[file] = max(best.get(file, 0.0), r.score)
    return sorted(best, key=lambda f: (-best[f], f))

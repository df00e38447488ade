"""Index kinds as data, and the policy that picks one for a collection's size: which kind,
how big its inverted lists, how many vectors to train on, when to rebuild.

Pure Python and numpy, no FAISS: light commands (``tagscope index status``) and the status on
every page decide with it from an index's saved metadata. :mod:`indexer.ann` builds and
searches the indexes themselves; its docstring says why these kinds and thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import TagscopeError

KINDS = ("flat", "hnsw", "ivfpq")
FLAT_MAX = 50_000  # below this many vectors: exact search (p50 <= ~5 ms here)
HNSW_MAX = 200_000  # up to this many: HNSW; above: IVF-PQ (better recall from here on, 10x smaller)
ADD_BATCH = 100_000


@dataclass(frozen=True)
class KindSpec:
    """One kind of index as data. ``factory`` is a FAISS factory string with ``{nlist}`` and
    ``{m}`` filled in by :func:`factory_string`; ``search_params`` a ``faiss.ParameterSpace``
    string; ``oversample`` how many ANN candidates per wanted result the exact re-rank reads
    (1: the index scores exactly, no re-rank); training wants ``train_vectors`` plus
    ``train_per_list`` per inverted list (FAISS asks for 30-256 per list)."""

    factory: str
    search_params: str
    oversample: int
    exact: bool
    can_remove: bool
    train_vectors: int = 0
    train_per_list: int = 0


SPECS: dict[str, KindSpec] = {
    "flat": KindSpec("IDMap2,Flat", "", oversample=1, exact=True, can_remove=True),
    "hnsw": KindSpec("IDMap,HNSW32,SQ8", "efSearch=128", oversample=2, exact=False, can_remove=False,
                     train_vectors=20_000),
    "ivfpq": KindSpec("IVF{nlist}_HNSW32,PQ{m}x4fsr", "nprobe=32,quantizer_efSearch=64", oversample=20,
                      exact=False, can_remove=True, train_per_list=64),
}
MAX_CANDIDATES = 2_000  # re-rank reads at most this many stored vectors per query (2 MB at 512-d)


def choose_kind(n: int) -> str:
    """The kind ``auto`` picks for ``n`` vectors (see the module docstring and docs/scale.md)."""
    if n < FLAT_MAX:
        return "flat"
    return "hnsw" if n <= HNSW_MAX else "ivfpq"


def resolve_kind(kind: str, n: int) -> str:
    """``kind`` as given (``--kind``), with ``auto`` resolved for ``n`` vectors."""
    if kind == "auto":
        return choose_kind(n)
    kind_spec(kind)
    return kind


@dataclass(frozen=True)
class IndexShape:
    """What the rebuild policy needs to know of an index: its kind, how many vectors it holds
    (tombstones included) and its inverted lists (ivfpq). Read from a loaded index
    (:func:`indexer.ann.shape_of`) or from the metadata saved beside it, without FAISS."""

    kind: str
    count: int
    nlist: int = 0


def rebuild_reason(shape: IndexShape, n_stored: int, kind: str = "auto") -> str | None:
    """Why an index of ``shape`` should be rebuilt from the store now holding ``n_stored``
    embeddings, or None: the wanted kind changed, the collection outgrew (or shrank from) the
    inverted lists 4x, or more than a fifth of an hnsw graph is tombstones."""
    have, want = shape.kind, resolve_kind(kind, n_stored)
    if have != want:
        return f"{n_stored} embeddings want a {want} index, this one is {have}"
    if have == "ivfpq":
        nlist, best = shape.nlist, n_lists(n_stored)
        if max(nlist, best) >= 4 * min(nlist, best):
            return f"{n_stored} embeddings want {best} inverted lists, this index has {nlist}"
    if have == "hnsw" and shape.count > 1.25 * max(n_stored, 1):
        return f"{shape.count - n_stored} of the {shape.count} vectors in the graph are tombstones"
    return None


def n_lists(n: int) -> int:
    """Inverted lists for ``n`` vectors: the power of two nearest sqrt(n), 16 to 65,536."""
    return int(min(65_536, max(16, 2 ** round(np.log2(max(n, 1)) / 2))))


def pq_subquantizers(dim: int) -> int:
    """PQ sub-vectors: 4 dimensions each (4 bits per sub-vector: dim/2 bytes per code)."""
    return max(1, dim // 4)


def factory_string(kind: str, n: int, dim: int) -> str:
    """The FAISS factory string of ``kind`` sized for ``n`` vectors of ``dim`` dimensions."""
    return kind_spec(kind).factory.format(nlist=n_lists(n), m=pq_subquantizers(dim))


def train_size(kind: str, n: int) -> int:
    """How many stored embeddings :func:`build_index` wants as its training sample (0: none)."""
    spec = kind_spec(kind)
    return min(n, spec.train_vectors + spec.train_per_list * (n_lists(n) if spec.train_per_list else 0))


def train_minimum(kind: str, n: int) -> int:
    """The fewest stored embeddings a ``kind`` index for ``n`` vectors can train on (0: no training;
    FAISS wants one vector per inverted list at the very least)."""
    spec = kind_spec(kind)
    if spec.train_per_list:
        return n_lists(n)
    return 1 if spec.train_vectors else 0


def kind_spec(kind: str) -> KindSpec:
    if kind not in SPECS:
        raise TagscopeError(f"unknown index kind {kind!r}: use one of auto, {', '.join(KINDS)}")
    return SPECS[kind]

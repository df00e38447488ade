"""Pairs and groups of near-duplicates among rows of L2-normalised vectors (pure: arrays in,
arrays out; :mod:`indexer.search.duplicates` feeds them a collection's stored embeddings).

Pairs: every pair with a cosine of at least the threshold among each row's ``NEIGHBOURS`` nearest,
found by a k-nearest search over an exact inner-product index, ``QUERY_CHUNK`` rows at a time (up
to ``EXACT_MAX`` rows; above, in an HNSW graph, whose cosines are then exact). Not a range search:
at a low threshold its results grow with the square of the rows, while this work is bounded by
rows x ``NEIGHBOURS`` whatever the threshold. Groups: complete linkage inside each connected
component of those pairs (a chain A~B, B~C, A far from C never ends in one group).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from core.errors import TagscopeError

EXACT_MAX = 50_000  # up to this many photos, the nearest are found exactly (a flat index)
QUERY_CHUNK = 2048  # photos whose nearest one search finds
NEIGHBOURS = 64  # the nearest photos of each that are compared: a burst of more is split
MAX_PAIRS = 2_000_000  # near-duplicate pairs at most (~0.5 GB of grouping; a threshold that pairs too much)


def similar_pairs(vectors: np.ndarray, threshold: float, exact_max: int = EXACT_MAX,
                  neighbours: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of rows ``(i, j)``, ``i < j``, of the L2-normalised ``vectors`` whose cosine is at
    least ``threshold``, among each row's ``neighbours`` nearest: (i, j, cosine) arrays. The nearest
    are found exactly (a flat inner-product index) up to ``exact_max`` rows, in an HNSW graph
    above; cosines are exact either way. The work and memory are bounded by rows x ``neighbours``
    whatever the threshold (a range search's results grow with the square of the rows at a low
    one), and the pairs by ``MAX_PAIRS``."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if n < 2:
        return empty
    index = _nearest_index(vectors, n > exact_max, neighbours)
    k = min(neighbours + 1, n)  # + the row itself
    rows_i, rows_j, total = [], [], 0
    for start in range(0, n, QUERY_CHUNK):
        sims, found = index.search(vectors[start:start + QUERY_CHUNK], k)
        queries = start + np.repeat(np.arange(len(found)), k)
        found, sims = found.reshape(-1).astype(np.int64), sims.reshape(-1)
        keep = (found >= 0) & (found != queries) & (sims >= threshold - 1e-4)
        rows_i.append(queries[keep])
        rows_j.append(found[keep])
        total += int(keep.sum())
        if total > 2 * MAX_PAIRS:
            raise TagscopeError(f"a threshold of {threshold:g} makes more than {MAX_PAIRS:,} pairs of "
                                "near-duplicates: raise it (e.g. 0.95)")
    i, j = np.concatenate(rows_i), np.concatenate(rows_j)
    if len(i) == 0:
        return empty
    pairs = np.unique(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1), axis=0)
    exact = np.einsum("nd,nd->n", vectors[pairs[:, 0]], vectors[pairs[:, 1]])  # the same for both kinds
    ok = exact >= threshold
    return pairs[ok, 0], pairs[ok, 1], exact[ok].astype(np.float32)


def _nearest_index(vectors: np.ndarray, approximate: bool, neighbours: int):
    """An inner-product index of ``vectors``: exact (flat), or an HNSW graph searched ``neighbours`` deep."""
    import faiss  # here: the module stays importable without loading FAISS

    dim = vectors.shape[1]
    if not approximate:
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index
    index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 80
    index.add(vectors)
    index.hnsw.efSearch = max(128, 2 * neighbours)
    return index


def crowded(n: int, i: np.ndarray, j: np.ndarray, neighbours: int = NEIGHBOURS) -> int:
    """Rows (of ``n``) with at least ``neighbours`` near-duplicates among pairs ``(i, j)``: rows that
    may have more than were compared (:func:`similar_pairs` compares each row's nearest only)."""
    if n == 0 or len(i) == 0:
        return 0
    return int((np.bincount(np.concatenate([i, j]), minlength=n) >= neighbours).sum())


def complete_groups(n: int, i: np.ndarray, j: np.ndarray, sims: np.ndarray) -> list[list[int]]:
    """Groups of rows (of ``n``) from near-duplicate pairs ``(i, j, cosine)``: in each connected
    component, repeatedly the row with the most partners left, then, closest to it first, each row
    paired with every member so far (complete linkage). Groups of two or more, each starting with
    its seed row; rows of no group are left out."""
    partners: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b, s in zip(i.tolist(), j.tolist(), sims.tolist()):
        partners[a][b] = s
        partners[b][a] = s
    groups: list[list[int]] = []
    for component in _components(n, i, j):
        left = set(component)
        while len(left) > 1:
            seed = max(left, key=lambda r: (sum(p in left for p in partners[r]), -r))
            near = sorted((p for p in partners[seed] if p in left), key=lambda p: (-partners[seed][p], p))
            if not near:
                break  # the one with most partners has none: neither has any other
            group = [seed]
            for candidate in near:
                if all(m in partners[candidate] for m in group[1:]):
                    group.append(candidate)
            groups.append(group)
            left.difference_update(group)
    return groups


def _components(n: int, i: np.ndarray, j: np.ndarray) -> list[list[int]]:
    """Connected components (of two or more rows) of the graph with edges ``(i, j)``: union-find."""
    parent = list(range(n))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(i.tolist(), j.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = defaultdict(list)
    for x in sorted(set(i.tolist()) | set(j.tolist())):
        members[root(x)].append(x)
    return [rows for _, rows in sorted(members.items()) if len(rows) > 1]


def group_rows(vectors: np.ndarray, threshold: float, exact_max: int = EXACT_MAX,
               same_shot: np.ndarray | None = None) -> list[list[int]]:
    """:func:`similar_pairs` then :func:`complete_groups`: groups of rows of ``vectors``. Rows with the
    same non-negative ``same_shot`` key (the files of one shot) are never paired."""
    return complete_groups(len(vectors), *shot_pairs(vectors, threshold, exact_max, same_shot))


def shot_pairs(vectors: np.ndarray, threshold: float, exact_max: int = EXACT_MAX,
               same_shot: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`similar_pairs` but those of two files of one shot (the same non-negative ``same_shot``)."""
    i, j, s = similar_pairs(vectors, threshold, exact_max)
    if same_shot is not None and len(i):
        other = (same_shot[i] < 0) | (same_shot[i] != same_shot[j])
        i, j, s = i[other], j[other], s[other]
    return i, j, s

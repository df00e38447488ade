"""A FAISS vector index keyed by SQL image ids, persisted atomically next to its metadata.

Embeddings are L2-normalised, so inner product = cosine similarity. One index per model
version: vectors from different models are never mixed. Workers do not write the index:
it is a cache of the embedding store (:mod:`indexer.store`), kept in step by :mod:`indexer.sync`.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path

import faiss
import numpy as np

from core.atomic import atomic_write_all
from core.errors import TagscopeError
from indexer import ann, files, kinds

log = logging.getLogger(__name__)

# The index is a cache of the embedding store: rebuilding it reads no photo.
REBUILD_HINT = "run `tagscope index rebuild` (it rebuilds the index from the stored embeddings)"
CHECK_CHUNK = 1 << 22  # bytes read per step while checking a saved file's CRC-32


class IndexDamaged(TagscopeError):
    """A saved index file that is truncated or corrupted (its size, checksum or vector count
    disagrees with its metadata, or FAISS cannot read it): rebuild it from the store."""


class IndexSaveFailed(TagscopeError):
    """Saving the index failed (a full disk, a quota): the file on disk is the previous one."""


class VectorIndex:
    """An inner-product FAISS index over normalised embeddings of one model version; ids are SQL
    image ids. Its kind (:mod:`indexer.ann`: flat, hnsw, ivfpq) is chosen at build time."""

    def __init__(self, folder: str | os.PathLike, version: str, dim: int, kind: str = "flat",
                 index: faiss.Index | None = None, factory: str | None = None) -> None:
        self.folder = Path(folder)
        self.version = version
        self.dim = dim
        self.kind = kind
        self.index = index if index is not None else ann.build_index("flat", dim, 0)
        self.factory = factory or kinds.factory_string(kind, 0, dim)
        self.loaded_mtime: float | None = None
        self.position = 0  # the last entry of the index change log applied (:mod:`indexer.log`)

    @classmethod
    def build(cls, folder: str | os.PathLike, version: str, dim: int, kind: str, n_hint: int,
              sample: np.ndarray | None = None) -> VectorIndex:
        """An empty index of ``kind`` sized for ``n_hint`` vectors, trained on ``sample`` if it must be."""
        return cls(folder, version, dim, kind, ann.build_index(kind, dim, n_hint, sample),
                   kinds.factory_string(kind, n_hint, dim))

    # -- files ------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return files.index_path(self.folder, self.version)

    @property
    def meta_path(self) -> Path:
        return files.meta_path(self.folder, self.version)

    @classmethod
    def open(cls, folder: str | os.PathLike, version: str, dim: int) -> VectorIndex:
        """Load the index of ``version`` from ``folder``, or start an empty flat one."""
        idx = cls(folder, version, dim)
        if idx.path.exists():
            idx.reload()
        return idx

    def reload(self) -> None:
        """Load the saved file, checked before FAISS parses it against the size and CRC-32 its
        metadata records (files saved since they are recorded), then FAISS's own reading and the
        vector count: a file that fails a check raises :class:`IndexDamaged`; the loaded index is
        kept."""
        try:
            meta = json.loads(self.meta_path.read_text()) if self.meta_path.exists() else {}
        except (OSError, ValueError) as exc:
            raise IndexDamaged(f"cannot read the index metadata {self.meta_path} ({exc}): {REBUILD_HINT}") from None
        if not isinstance(meta, dict):
            raise IndexDamaged(f"the index metadata {self.meta_path} is not an object: {REBUILD_HINT}")
        if meta and (meta.get("version") != self.version or meta.get("dim") != self.dim):
            raise TagscopeError(f"index {self.path} belongs to model {meta.get('version')} "
                                f"(dim {meta.get('dim')}), not {self.version}: {REBUILD_HINT}")
        try:
            with open(self.path, "rb") as fh:  # one open file: the bytes checked are the bytes parsed
                stat = os.fstat(fh.fileno())
                _check_file(fh, stat.st_size, meta, self.path)
                fh.seek(0)
                index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
        except RuntimeError as exc:
            raise IndexDamaged(f"FAISS cannot read the index {self.path} ({str(exc).strip().splitlines()[-1]}): "
                               f"{REBUILD_HINT}") from None
        if meta.get("count") is not None and index.ntotal != int(meta["count"]):
            raise IndexDamaged(f"the index {self.path} holds {index.ntotal} vectors, its metadata {meta['count']}: "
                               f"{REBUILD_HINT}")
        if index.d != self.dim:
            raise TagscopeError(f"index {self.path} has dimension {index.d}, the model {self.dim}: "
                                f"{REBUILD_HINT}")
        self.index = index
        self.kind = meta.get("kind") or ann.kind_of(self.index)
        self.factory = meta.get("factory", self.factory)
        self.position = int(meta.get("log_position", 0))
        ann.apply_search_params(self.index, self.kind)
        self.loaded_mtime = stat.st_mtime

    def is_stale(self) -> bool:
        """True when the file on disk changed since this object loaded it."""
        if not self.path.exists():
            return False
        return self.loaded_mtime is None or self.path.stat().st_mtime != self.loaded_mtime

    def save(self) -> None:
        """Write the index and its metadata (with the file's size and CRC-32, which :meth:`reload`
        checks) to temp files, then rename both into place. When a write fails (a full disk, a
        quota) neither file changes, no temp file is left and :class:`IndexSaveFailed` says so:
        the saved position stays where the saved file is, so the next merge applies the same log
        entries again."""
        written: dict[str, int] = {}

        def write_index(tmp: Path) -> None:
            crc, size = 0, 0
            with open(tmp, "wb") as fh:
                def put(data: bytes) -> None:
                    nonlocal crc, size
                    fh.write(data)
                    crc, size = zlib.crc32(data, crc), size + len(data)

                faiss.write_index(self.index, faiss.PyCallbackIOWriter(put))
            written.update(bytes=size, crc32=crc)

        def write_meta(tmp: Path) -> None:
            meta = {"version": self.version, "dim": self.dim, "kind": self.kind, "factory": self.factory,
                    "metric": "inner_product", "count": len(self), "log_position": self.position, **written}
            tmp.write_text(json.dumps(meta, indent=1))

        try:
            atomic_write_all([(self.path, write_index), (self.meta_path, write_meta)])
        except OSError as exc:
            raise IndexSaveFailed(f"could not save the index {self.path} ({exc.strerror or exc}): free space in "
                                  f"{self.folder}; the saved index is unchanged and the next merge saves it "
                                  "again") from exc
        files.clear_damage_record(self.folder, self.version)  # this copy is whole again
        self.loaded_mtime = self.path.stat().st_mtime

    @property
    def exact(self) -> bool:
        """True when search ranks by the exact inner product (a flat index), not an approximation."""
        return kinds.SPECS[self.kind].exact

    # -- contents ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _check(self, ids: np.ndarray, vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or vectors.shape != (len(ids), self.dim):
                raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        return ids, vectors

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace the vectors of ``ids`` (re-tagging replaces, never duplicates; an hnsw
        index, which cannot delete, keeps the old entry as a tombstone that re-ranking drops)."""
        ids, vectors = self._check(ids, vectors)
        if not len(ids):
            return
        # Last write wins within one call too.
        _, last = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - last)
        ids, vectors = ids[keep], vectors[keep]
        ann.remove(self.index, ids)
        ann.add(self.index, ids, vectors)

    def extend(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Append vectors of ids NOT in the index yet (a rebuild filling a new index): no removal
        pass, which costs a scan of the whole index per call in the flat and IVF kinds."""
        ids, vectors = self._check(ids, vectors)
        ann.add(self.index, ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        ids, _ = self._check(ids)
        return ann.remove(self.index, ids)

    def contains(self, image_id: int) -> bool:
        try:
            self.index.reconstruct(int(image_id))
            return True
        except RuntimeError:
            return False

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, ids) per query row by the index's own scores (approximate unless
        :attr:`exact`; :func:`indexer.search.searcher.rerank` makes them exact); missing slots have id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        if len(self) == 0 or k <= 0:
            return (np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64))
        return ann.search(self.index, queries, min(k, len(self)))


def _check_file(fh, size: int, meta: dict, path: Path) -> None:
    """Raise :class:`IndexDamaged` when the open file ``fh`` of ``size`` bytes is not the one its
    metadata describes (size, CRC-32; metadata without them, from before they were saved, pass)."""
    if meta.get("bytes") is not None and size != int(meta["bytes"]):
        raise IndexDamaged(f"the index {path} has {size} bytes, its metadata says {meta['bytes']} (truncated?): "
                           f"{REBUILD_HINT}")
    if meta.get("crc32") is None:
        return
    crc, buffer = 0, bytearray(CHECK_CHUNK)
    view = memoryview(buffer)
    while n := fh.readinto(buffer):
        crc = zlib.crc32(view[:n], crc)
    if crc != int(meta["crc32"]):
        raise IndexDamaged(f"the index {path} does not match its checksum (CRC-32 {crc:08x}, saved "
                           f"{int(meta['crc32']):08x}): {REBUILD_HINT}")

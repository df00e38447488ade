"""Label embeddings are data too: each (model version, label text) is encoded once, stored in
SQL (float32, exact), and reused by every run, process and worker that tags with that version.

Encoding a vocabulary through the text tower is the single biggest cost of a run with a large
vocabulary on a CPU (the 2,245 default labels take minutes with ViT-B-32); with the store only
labels never seen under a version are encoded. A new model version has no rows, so its
labels are encoded afresh (the store is keyed by version). All workers score with the same
stored vectors, whatever device encoded them first.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.schema import LabelEmbedding
from core.sql_in import chunks
from mkt.tagmodel import TagModel

log = logging.getLogger(__name__)


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def get_or_encode(db: Database, model: TagModel, model_version_id: int, texts: Sequence[str]
                  ) -> tuple[torch.Tensor, int]:
    """Embeddings ``[L, D]`` (float32, on the model's device) of ``texts`` under this version:
    stored ones read, the others encoded and stored. Returns them and how many were encoded."""
    keys = [text_key(t) for t in texts]
    found: dict[str, np.ndarray] = {}
    with db.session() as s:
        for chunk in chunks(sorted(set(keys))):
            for key, raw in s.execute(select(LabelEmbedding.text_key, LabelEmbedding.vector)
                                      .where(LabelEmbedding.model_version_id == model_version_id,
                                             LabelEmbedding.text_key.in_(chunk))):
                found[key] = np.frombuffer(raw, dtype=np.float32)
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
    if missing:
        with torch.inference_mode():
            encoded = model.encode_labels(missing).float().cpu().numpy()
        rows = [{"model_version_id": model_version_id, "text_key": text_key(t), "text": t,
                 "vector": np.ascontiguousarray(v).tobytes()} for t, v in zip(missing, encoded)]
        _store(db, rows)
        found.update({row["text_key"]: v for row, v in zip(rows, encoded)})
        log.info("label embeddings: %d encoded, %d read from the store", len(missing), len(texts) - len(missing))
    if not texts:
        return torch.empty(0, model.embed_dim, device=model.device), 0
    return torch.from_numpy(np.stack([found[k] for k in keys])).to(model.device), len(missing)


def _store(db: Database, rows: list[dict]) -> None:
    """Insert new rows; another worker storing the same texts meanwhile wins (same vectors)."""
    for start in range(0, len(rows), 1000):
        part = rows[start:start + 1000]
        try:
            with db.session() as s:
                s.execute(insert(LabelEmbedding), part)
        except IntegrityError:
            for row in part:
                try:
                    with db.session() as s:
                        s.execute(insert(LabelEmbedding), [row])
                except IntegrityError:
                    pass

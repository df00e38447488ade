"""Label embeddings are encoded once per (model version, text), stored, and reused."""

from __future__ import annotations

import torch
from sqlalchemy import func, select

from core.schema import Label, LabelEmbedding, ModelVersion
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset


def test_label_embeddings_are_stored_reused_and_keyed_by_model_version(home_env, synthetic_photos, tmp_path):
    from indexer.text_store import get_or_encode
    from mkt.factory import get_model

    home, env, url = home_env
    run_cli("tag", str(photos_subset(synthetic_photos, tmp_path / "photos", 10)), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        mv = s.scalars(select(ModelVersion)).one()
        names = list(s.scalars(select(Label.name).order_by(Label.id)))
        stored = s.scalar(select(func.count()).select_from(LabelEmbedding)
                          .where(LabelEmbedding.model_version_id == mv.id))
    assert stored == len(names) == 126  # the tagging run stored its vocabulary's embeddings
    model = get_model("synthetic", "cpu")
    emb, encoded = get_or_encode(db, model, mv.id, names)
    assert encoded == 0  # another process, another run: nothing encoded again
    with torch.inference_mode():
        fresh = model.encode_labels(names)
    assert torch.allclose(emb, fresh, atol=1e-6)
    emb2, encoded2 = get_or_encode(db, model, mv.id, ["a brand new label", names[0], "a brand new label"])
    assert encoded2 == 1 and torch.equal(emb2[0], emb2[2]) and torch.equal(emb2[1], emb[0])
    with db.session() as s:  # a new model version has none: its labels are encoded afresh
        other = ModelVersion(version="f" * 64, spec="synthetic", embed_dim=mv.embed_dim)
        s.add(other)
        s.flush()
        other_id = other.id
    assert get_or_encode(db, model, other_id, names[:5])[1] == 5


def test_search_keeps_the_embeddings_of_recent_query_texts(tmp_path):
    from core.settings import load_settings
    from indexer.search.searcher import QUERY_CACHE, Searcher
    from mkt.factory import get_model

    model = get_model("synthetic", "cpu")
    searcher = Searcher(load_settings(environ={}, home=str(tmp_path)), model=model)
    first = searcher.embed_query("red circle")
    assert searcher.embed_query("red circle") is first  # the second time: no text tower
    with torch.inference_mode():
        assert torch.allclose(first, model.encode_labels(["red circle"]), atol=1e-6)
    for n in range(QUERY_CACHE):
        searcher._queries[(model.version, f"text {n}")] = first
    searcher.embed_query("blue star")
    assert len(searcher._queries) == QUERY_CACHE and (model.version, "red circle") not in searcher._queries

"""Model versions and their indexes in the JSON API: the same as ``tagscope models`` and
``tagscope index status``.

``GET /api/models`` lists the versions (``active``: the one search serves); ``POST
/api/models/use`` (``{"version": ID, unique prefix or spec}``) makes another the one search
serves, as ``tagscope models use`` does; ``GET /api/index`` is each version's index: kind, size,
stored embeddings, changes not applied yet, rebuilds. No file paths are shown.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from core.errors import TagscopeError
from core.schema import ModelVersion, collection_model_version
from core.settings import Settings
from indexer.status import index_status
from indexer.store import StoreVersion
from migrations import get_database
from tagger.versions import list_versions, use_version
from web.body import json_body
from web.context import get_db, get_settings

bp = Blueprint("models", __name__)


@bp.get("/api/models")
def list_api():
    return jsonify({"models": list_versions(get_db())})


@bp.post("/api/models/use")
def use_api():
    body = json_body('{"version": "0c1d2e3f"} (a version id, a unique prefix of one, or a model spec)')
    ref = body.get("version")
    if not isinstance(ref, str) or not ref.strip():
        raise TagscopeError('"version" is required: a version id, a unique prefix of one, or a model spec '
                            "from GET /api/models")
    use(ref.strip())
    return jsonify({"models": list_versions(get_db())})


def use(ref: str) -> ModelVersion:
    return use_version(get_db(), ref)


@bp.get("/api/index")
def index_api():
    return jsonify({"indexes": index_states(get_settings())})


def index_states(settings: Settings) -> list[dict[str, Any]]:
    """Each model version's index as ``tagscope index status`` reports it, without file paths."""
    db = get_database(settings.db_url)
    with db.session() as s:
        active = collection_model_version(s)
        rows = s.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
        versions = [(StoreVersion.of(mv), mv.spec) for mv in rows]
        active_id = active.id if active is not None else None
    out = []
    for mv, spec in versions:
        st = index_status(settings, db, mv)
        rebuild = st["rebuild"]
        out.append({"version": mv.version, "spec": spec, "active": mv.id == active_id, "kind": st["kind"],
                    "size": st["size"], "dim": st["dim"], "stored_embeddings": st["stored_embeddings"],
                    "pending_changes": st["pending_changes"], "fresh": st["fresh"], "file_bytes": st["file_bytes"],
                    "saved_at": st["saved_at"], "rebuilding": bool(rebuild.get("running")),
                    "last_rebuild": rebuild.get("finished_at") if rebuild.get("state") == "done" else None,
                    "rebuild_wanted": st["rebuild_wanted"]})
    return out

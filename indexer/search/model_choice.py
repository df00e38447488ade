"""Which model a searcher embeds queries with: the version the collection holds, on the runtime
that made it, with the text tower where this machine's ``runtime`` setting runs it.

Without a model set, the collection's active version (:func:`core.schema.collection_model_version`),
made again from its id (``<version>-onnx-int8`` -> ONNX Runtime int8 for photo queries). With a
model set, the version the collection holds of that model, whichever runtime tagged it (the
active one first); a model the collection is not tagged with is refused in one line. Query texts
go through the text tower, which is the same in every version: on a CPU with ``runtime`` other
than ``torch`` its transformer runs on ONNX Runtime fp32 (:mod:`mkt.runtime.text`), which gives
PyTorch's embeddings several times faster, so a server on any runtime serves any version.
"""

from __future__ import annotations

from core.db import Database
from core.errors import TagscopeError
from core.schema import collection_model_version, tagged_versions
from core.settings import Settings
from mkt.runtime import split_version
from mkt.runtime.factory import model_on, runtime_of
from mkt.tagmodel import TagModel


def resolve_model(settings: Settings, db: Database) -> TagModel:
    with db.session() as s:
        current = collection_model_version(s)
        tagged = tagged_versions(s)
        current_spec = current.spec if current is not None else None
    device = settings.resolved_device()
    if settings.model is None:  # the version's own runtime: its image tower, for photo queries
        runtime = runtime_of(current.version) if current is not None else "torch"
        return with_text(settings, model_on(current_spec or settings.tagging_model, device, runtime=runtime))
    model = model_on(settings.model, device)
    same = sorted((v != (current and current.version), v) for v in tagged if split_version(v)[0] == model.version)
    if same:  # this model, tagged by any runtime: that version (the active one first)
        return with_text(settings, model_on(settings.model, device, runtime=runtime_of(same[0][1])))
    if tagged:
        raise TagscopeError(f"the collection is tagged with {current_spec}, not {settings.model} "
                            f"(version {model.version}): pass --model {current_spec}, leave the model unset, "
                            "or re-tag with this model")
    return with_text(settings, model)


def with_text(settings: Settings, model: TagModel) -> TagModel:
    if settings.runtime == "torch":
        return model
    from mkt.runtime.model import with_text_runtime

    return with_text_runtime(model)

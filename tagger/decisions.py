"""Where each label's rule comes from: computing ``label_cutoffs`` for a model version
(:mod:`core.decisions` reads and applies them).

Every scored label (a keyword leaf, :meth:`core.keyword_tree.Tree.scored`) gets one rule per model
version:

- a **bundle** rule when the model carries a calibration fitted when its bundle was built
  (``bundle.meta["tags"]``, :func:`mkt.tag_calibration.bundle_rule`): the label's own (``bundle``)
  or the bundle's rule for labels it was not fitted on (``pooled``);
- else a **collection** rule (:func:`mkt.tag_calibration.collection_rule`) from the label's score
  distribution over the collection's stored embeddings (:mod:`tagger.label_stats`): the cutoff
  search computes for the label as a query text, and a slope from the label's own spread. It
  records the collection's size (``images``); once the collection grew or shrank by more than
  :data:`RECOMPUTE_GROWTH` since, it is computed again.

When rules are computed, so that tags are never served undecided:

- a job's close computes the rules of its version before the transaction that may switch the
  version in (:mod:`tagger.jobs.close`), and :func:`tagger.versions.switch_in` refuses a version
  with a scored label left without one;
- ``tagscope labels add`` computes the new labels' rules once their tags are written, before
  they show, with the same function: the decisions a full re-tag would make (:mod:`tagger.relabel`);
- readers call :func:`ensure_decided`, which computes what is missing or stale (a collection
  tagged before rules existed), and ``tagscope labels calibrate`` computes all of them again.

The same collection gives the same rules: the sample is drawn with a fixed seed. Light to import
(the model, torch and the scoring are imported when something is computed): readers import it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.db import Database
from core.decisions import Rule
from core.errors import TagscopeError
from core.keyword_tree import Tree
from core.modelspec import parse_spec
from core.schema import TAGGED, Embedding, Image, Label, LabelCutoff, ModelVersion, collection_model_version, utcnow
from core.settings import Settings
from migrations import get_database
from mkt.calibration import Stats

if TYPE_CHECKING:
    from mkt.tagmodel import TagModel

log = logging.getLogger(__name__)

ACTIVE, COLLECTION = "active", "collection"
RECOMPUTE_GROWTH = 0.1  # a collection rule is computed again once the collection's size changed by this share
RECHECK_S = 30.0  # how long a reader's "nothing to compute" holds in a process before it asks SQL again
PLACES = 6  # decimals kept of a rule's threshold and slope

_quiet: dict[tuple[str, int], float] = {}  # (database, version) -> when a reader last found nothing to do
_lock = threading.Lock()  # one computation at a time in a process (a server's threads)


def collection_size(s: Session, model_version_id: int) -> int:
    """Tagged images with a stored embedding of the version (what collection rules were computed over)."""
    return int(s.scalar(select(func.count()).select_from(Embedding).join(Image, Image.id == Embedding.image_id)
                        .where(Embedding.model_version_id == model_version_id, Image.status == TAGGED)) or 0)


def missing_rules(s: Session, model_version_id: int, tree: Tree | None = None, shown_only: bool = False
                  ) -> list[int]:
    """Scored labels (keyword leaves not being removed; only the active ones, which readers see,
    when ``shown_only``) with no rule under the version."""
    tree = tree or Tree.load(s)
    have = set(s.scalars(select(LabelCutoff.label_id).where(LabelCutoff.model_version_id == model_version_id)))
    shown = set(s.scalars(select(Label.id).where(Label.state == ACTIVE))) if shown_only else None
    return sorted(i for i in tree.nodes if tree.scored(i) and i not in have and (shown is None or i in shown))


def to_decide(s: Session, model_version_id: int) -> list[int]:
    """The scored labels whose rule under the version is missing, or a collection rule computed
    when the collection's size differed from today's by more than :data:`RECOMPUTE_GROWTH`."""
    tree = Tree.load(s)
    todo = set(missing_rules(s, model_version_id, tree))
    rows = s.execute(select(LabelCutoff.label_id, LabelCutoff.images).where(
        LabelCutoff.model_version_id == model_version_id, LabelCutoff.source == COLLECTION)).all()
    if rows:
        now = collection_size(s, model_version_id)
        todo |= {i for i, images in rows if i in tree.nodes and tree.scored(i)
                 and abs(now - (images or 0)) > RECOMPUTE_GROWTH * max(images or 0, 1)}
    return sorted(todo)


def calibrate_version(db: Database, model: TagModel, model_version_id: int,
                      label_ids: Iterable[int] | None = None) -> int:
    """Compute and store the rules of the version's scored labels (those of ``label_ids`` only,
    given): bundle rules where the model's calibration has one, collection rules for the others,
    all of these in one pass over the collection's sample. ``model`` is the version's
    :class:`mkt.tagmodel.TagModel`. Returns how many rules were stored."""
    from mkt.tag_calibration import bundle_rule, collection_rule, collection_slope

    with db.session() as s:
        tree = Tree.load(s)
        images = collection_size(s, model_version_id)
    wanted = None if label_ids is None else set(label_ids)
    nodes = [n for i, n in sorted(tree.nodes.items()) if tree.scored(i) and (wanted is None or i in wanted)]
    calibration = getattr(model, "tag_calibration", None)
    rules: dict[int, Rule] = {}
    rest = []
    for node in nodes:
        rule = bundle_rule(calibration, node.name)
        if rule is None:
            rest.append(node)
        else:
            rules[node.id] = rule
    if rest:
        from tagger.label_stats import collection_stats
        from tagger.vocabulary import embed_labels

        emb = embed_labels(model, [(n.id, n.name, n.synonyms) for n in rest], db, model_version_id)
        stats, _ = collection_stats(db, model, model_version_id, [n.id for n in rest], emb)
        k, nan = collection_slope(calibration), float("nan")
        for node in rest:  # an empty collection: nothing matches until it has photos (then recomputed)
            rules[node.id] = collection_rule(stats.get(node.id, Stats(nan, nan, nan, nan)), model.relevance, k)
    store_rules(db, model_version_id, rules, images)
    if wanted is None:  # the version's whole rule set: labels no longer scored keep none
        with db.session() as s:
            s.execute(delete(LabelCutoff).where(LabelCutoff.model_version_id == model_version_id,
                                                LabelCutoff.label_id.not_in(list(rules))))
    log.info("rules of %d label(s) for model version %d: %s", len(rules), model_version_id,
             dict(Counter(r.source for r in rules.values())))
    return len(rules)


def store_rules(db: Database, model_version_id: int, rules: dict[int, Rule], images: int) -> None:
    """Upsert ``label_cutoffs`` rows (another process computing the same rules meanwhile: the last
    one stays; they are the same)."""
    if not rules:
        return
    if db.is_sqlite:
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    now = utcnow()
    rows = [{"label_id": i, "model_version_id": model_version_id, "source": r.source, "images": images,
             "threshold": None if r.threshold is None else round(float(r.threshold), PLACES),
             "slope": round(float(r.slope), PLACES), "computed_at": now} for i, r in sorted(rules.items())]
    statement = insert(LabelCutoff)
    statement = statement.on_conflict_do_update(
        index_elements=[LabelCutoff.label_id, LabelCutoff.model_version_id],
        set_={c: statement.excluded[c] for c in ("threshold", "slope", "source", "images", "computed_at")})
    with db.session() as s:
        for start in range(0, len(rows), 1000):
            s.execute(statement, rows[start:start + 1000])


def model_of(mv: ModelVersion, device: str) -> TagModel:
    """The model that made version ``mv``, on ``device`` (kept per process by
    :func:`mkt.runtime.factory.model_on`); refuses a spec that now loads another version."""
    from mkt.runtime.factory import model_on, runtime_of

    model = model_on(parse_spec(mv.spec), device, runtime=runtime_of(mv.version))
    if model.version != mv.version:
        raise TagscopeError(f"the collection was tagged with {mv.spec} version {mv.version}, which now loads "
                            f"version {model.version}: scoring labels needs the same model; re-tag with "
                            "`tagscope tag PATH --retag`")
    return model


def ensure_decided(settings_or_db: Settings | Database, version_id: int, *, model: TagModel | None = None,
                   recheck_s: float = RECHECK_S) -> int:
    """Compute the version's missing or stale rules (:func:`to_decide`), loading its model only
    when there are some (on the settings' device, else the CPU); returns how many were computed.
    Readers call it before deciding tags: cheap when nothing is to do (a few queries, and for
    ``recheck_s`` seconds after that answer, nothing)."""
    settings = settings_or_db if isinstance(settings_or_db, Settings) else None
    db = get_database(settings.db_url) if settings is not None else settings_or_db
    key = (db.url, int(version_id))
    if recheck_s > 0 and time.monotonic() < _quiet.get(key, float("-inf")) + recheck_s:
        return 0
    with db.session() as s:
        mv = s.get(ModelVersion, version_id)
        todo = to_decide(s, version_id) if mv is not None else []
    if not todo:
        _quiet[key] = time.monotonic()
        return 0
    with _lock:
        model = model or model_of(mv, settings.resolved_device() if settings is not None else "cpu")
        return calibrate_version(db, model, version_id, todo)


def recalibrate(settings: Settings) -> tuple[ModelVersion, dict[str, int]]:
    """``tagscope labels calibrate``: every rule of the collection's model version computed again;
    the version and how many rules of each source."""
    db = get_database(settings.db_url)
    with db.session() as s:
        mv = collection_model_version(s)
    if mv is None:
        raise TagscopeError("nothing is tagged yet: `tagscope tag PATH` first")
    with _lock:
        calibrate_version(db, model_of(mv, settings.resolved_device()), mv.id)
    with db.session() as s:
        counts = dict(s.execute(select(LabelCutoff.source, func.count()).where(LabelCutoff.model_version_id == mv.id)
                                .group_by(LabelCutoff.source)).all())
    return mv, {k: int(v) for k, v in sorted(counts.items())}

"""The keyword tree in the database: a keyword file (:mod:`tagger.keyword_files`) applied to the
vocabulary in one transaction, paths found in XMP sidecars added, and the vocabulary read back as
a tree (``tagscope labels export`` / ``list --tree``).

Applying a tree never breaks the one that is there silently:

- a keyword already in the vocabulary (case-insensitively) is that label: its name stays as it
  is; a keyword the file nests under a parent moves there (counted as ``moved``; a move that
  would put a keyword inside itself is refused with its line), one at the top of the file stays
  where it is; a Lightroom file sets its kind (``[group]``) and its synonyms, path lists and
  plain files leave them;
- the labels that are scored (keyword leaves, :meth:`core.keyword_tree.Tree.scored`) and were
  not, or whose synonyms changed, become ``pending``: :func:`settle` scores them from the stored
  embeddings, reading no photo, as ``tagscope labels add`` does; their old tags and rules go;
- a label that stops being scored (it got children, or became a group) loses its tags and rules:
  :func:`settle` scores the images that held them again so that each keeps its best ``top_n``.

:func:`settle` finds that work from what is stored (tags of labels that are not scored or are
pending), so an interrupted run is finished by the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.db import Database
from core.errors import TagscopeError
from core.keyword_tree import REMOVING, Node, Tree
from core.schema import KEYWORD, Label, LabelCutoff, Tag
from core.settings import Settings
from core.sql_in import chunks
from tagger.keyword_files import MAX_NAME_CHARS, Keyword, KeywordTree

ACTIVE, PENDING = "active", "pending"  # tagger.vocabulary's label states


def _tree(labels: Iterable[Label]) -> Tree:
    return Tree({label.id: Node(label.id, label.name, label.parent_id, label.kind, tuple(label.synonyms or ()))
                 for label in labels})


def _scored(tree: Tree) -> set[int]:
    return {i for i in tree.nodes if tree.scored(i)}


def _levels(parsed: KeywordTree) -> list[list[tuple[Keyword, Keyword | None]]]:
    levels: list[list[tuple[Keyword, Keyword | None]]] = []
    for node, parent, depth in parsed.walk():
        if depth == len(levels):
            levels.append([])
        levels[depth].append((node, parent))
    return levels


def _refuse_removing(s: Session, parsed: KeywordTree) -> None:
    removing = {n.lower(): n for n in s.scalars(select(Label.name).where(Label.state == REMOVING))}
    for node, _, _ in parsed.walk():
        if node.name.lower() in removing:
            name = removing[node.name.lower()]
            raise TagscopeError(f"{parsed.source} line {node.line}: the label {name!r} is being removed: finish "
                                f"with `tagscope labels remove {name!r}`, then import again")


def _update(label: Label, node: Keyword, parent_id: int | None, move: bool) -> str:
    """Apply what the file says of an existing label; returns ``moved``, ``updated`` or ``unchanged``."""
    what = "unchanged"
    if node.kind is not None and label.kind != node.kind:
        label.kind, what = node.kind, "updated"
    if node.synonyms is not None and list(label.synonyms or []) != node.synonyms:
        label.synonyms, what = (list(node.synonyms) or None), "updated"
    if move and parent_id is not None and label.parent_id != parent_id:
        label.parent_id, what = parent_id, "moved"
    return what


def _refuse_loops(tree: Tree, moved: list[tuple[Label, Keyword]], where: str) -> None:
    for label, node in moved:
        current, seen = label.parent_id, set()
        while current is not None and current in tree.nodes and current not in seen:
            if current == label.id:
                inside = " > ".join(tree.path_names(label.parent_id)[-3:])
                raise TagscopeError(f"{where} line {node.line}: {label.name!r} would be inside itself (under "
                                    f"{inside}): it is an ancestor of its new parent; move one of them in the file")
            seen.add(current)
            current = tree.nodes[current].parent_id


def _forget_rules(s: Session, label_ids: Iterable[int]) -> None:
    for chunk in chunks(sorted(set(label_ids))):
        s.execute(delete(LabelCutoff).where(LabelCutoff.label_id.in_(chunk)))


def _settle_states(s: Session, labels: Iterable[Label], was: set[int], resynonymed: set[int]) -> Counter:
    """Scored labels that were not, or whose synonyms changed, to ``pending`` (scored by
    :func:`settle`); labels no longer scored lose their rules. Returns counts."""
    labels = list(labels)
    s.flush()
    after = _tree(labels)
    now = _scored(after)
    counts: Counter = Counter()
    for label in labels:
        if label.id in now and (label.id not in was or label.id in resynonymed):
            label.state = PENDING
        elif label.id not in now and label.state == PENDING:
            label.state = ACTIVE
    counts["to_score"] = sum(1 for label in labels if label.state == PENDING)
    counts["unscored"] = len(was - now)
    _forget_rules(s, (was - now) | (resynonymed & now))
    return counts


def _inside(by_id: dict[int, Label], parent_id: int | None, label_id: int) -> bool:
    """Whether ``parent_id`` is the label ``label_id`` or a label under it."""
    current, seen = parent_id, set()
    while current is not None and current not in seen:
        if current == label_id:
            return True
        seen.add(current)
        current = by_id[current].parent_id if current in by_id else None
    return False


def _apply(s: Session, parsed: KeywordTree, source: str, movable: set[int] | None) -> tuple[Counter, list[str]]:
    """Create and update the labels of ``parsed``, level by level (a flush per level gives the new
    labels their ids); an existing label moves under the parent the file gives it (``movable``
    None: any, refused below when that makes a loop; else only those, once, and never into a
    loop). Returns the counts and the names added."""
    labels = {label.name.lower(): label for label in s.scalars(select(Label).where(Label.state != REMOVING))}
    was = _scored(_tree(labels.values()))
    counts: Counter = Counter()
    added: list[str] = []
    moved: list[tuple[Label, Keyword]] = []
    resynonymed: set[int] = set()
    for level in _levels(parsed):
        by_id = {label.id: label for label in labels.values()} if movable else {}
        for node, parent in level:
            parent_id = labels[parent.name.lower()].id if parent is not None else None
            label = labels.get(node.name.lower())
            if label is None:
                label = labels[node.name.lower()] = Label(
                    name=node.name, source=source, state=ACTIVE, parent_id=parent_id,
                    kind=node.kind or KEYWORD, synonyms=list(node.synonyms or ()) or None)
                s.add(label)
                added.append(node.name)
                counts["added"] += 1
                continue
            move = movable is None or (label.id in movable and not _inside(by_id, parent_id, label.id))
            before = list(label.synonyms or [])
            what = _update(label, node, parent_id, move)
            counts[what] += 1
            if what == "moved":
                moved.append((label, node))
                (movable or set()).discard(label.id)
            if list(label.synonyms or []) != before:
                resynonymed.add(label.id)
        s.flush()
    _refuse_loops(_tree(labels.values()), moved, parsed.source)
    counts.update(_settle_states(s, labels.values(), was, resynonymed))
    return counts, added


def import_tree(db: Database, parsed: KeywordTree, source: str = "import") -> dict[str, int]:
    """Apply a parsed keyword file to the vocabulary in ONE transaction (nothing is written when
    anything is refused). Returns counts: ``keywords`` (in the file), ``added``, ``moved``,
    ``updated``, ``unchanged``, ``to_score`` (pending: :func:`settle` scores them) and
    ``unscored`` (labels no longer scored, whose tags :func:`settle` replaces)."""
    with db.session() as s:
        _refuse_removing(s, parsed)
        counts, _ = _apply(s, parsed, source, movable=None)
    counts["keywords"] = len(parsed)
    return {k: int(counts[k]) for k in ("keywords", "added", "moved", "updated", "unchanged", "to_score",
                                        "unscored")}


def _paths_tree(paths: Sequence[Sequence[str]]) -> KeywordTree:
    """Paths merged by their prefixes (case-insensitively); a name that is not a valid label
    (empty, too long, with '|') ends its path there."""
    roots: list[Keyword] = []
    nodes: dict[tuple[str, ...], Keyword] = {}
    for path in paths:
        parent, key = None, ()
        for raw in path:
            name = " ".join(str(raw).split())
            if not name or len(name) > MAX_NAME_CHARS or "|" in name or any(ord(c) < 32 for c in name):
                break
            key += (name.lower(),)
            if key not in nodes:
                nodes[key] = Keyword(name)
                (parent.children if parent else roots).append(nodes[key])
            parent = nodes[key]
    return KeywordTree(roots, "pipe", "sidecar keywords")


def add_paths(db: Database, paths: Sequence[Sequence[str]], source: str) -> list[str]:
    """Add the keyword paths found in XMP sidecars (``[["Animals", "Mammals", "Dog"], ...]``) in one
    transaction: the labels not yet in the vocabulary, each under its path's parent, and the labels
    in no tree yet (no parent, no children: a flat ``dog``) put under theirs; labels already in a
    tree stay where they are, as they are. Returns the names added (new leaves are pending: call
    :func:`settle` to score them). Names that cannot be labels end their path; labels being
    removed are left alone."""
    parsed = _paths_tree(paths)
    with db.session() as s:
        removing = {n.lower() for n in s.scalars(select(Label.name).where(Label.state == REMOVING))}
        if removing:
            parsed = KeywordTree([r for r in parsed.roots if not _mentions(r, removing)], parsed.format, parsed.source)
        tree = Tree.load(s)
        flat = {i for i in tree.nodes if not tree.in_tree(i)}
        _, added = _apply(s, parsed, source, movable=flat)
    return added


def _mentions(root: Keyword, names: set[str]) -> bool:
    return any(node.name.lower() in names for node, _, _ in KeywordTree([root]).walk())


def export_tree(db: Database) -> KeywordTree:
    """The vocabulary as a keyword tree (labels being removed left out), siblings in the order
    they were added: what ``tagscope labels export`` writes."""
    with db.session() as s:
        tree = Tree.load(s)
    nodes = {i: Keyword(n.name, 0, n.kind, list(n.synonyms)) for i, n in tree.nodes.items()}
    for parent, kids in tree.children.items():
        if parent is not None:
            nodes[parent].children = [nodes[i] for i in kids]
    return KeywordTree([nodes[i] for i in tree.children.get(None, [])], "lightroom", "vocabulary")


def tree_document(db: Database) -> list[dict]:
    """The vocabulary as nested objects for ``tagscope labels list --tree --json``: each label's
    ``name``, ``kind``, ``synonyms``, ``state``, whether it is ``scored`` and its ``children``."""
    with db.session() as s:
        tree = Tree.load(s)
        states = dict(s.execute(select(Label.id, Label.state)).all())
    docs = {i: {"name": n.name, "kind": n.kind, "synonyms": list(n.synonyms), "state": states.get(i),
                "scored": tree.scored(i), "children": []} for i, n in tree.nodes.items()}
    for parent, kids in tree.children.items():
        if parent is not None:
            docs[parent]["children"] = [docs[i] for i in kids]
    return [docs[i] for i in tree.children.get(None, [])]


def stale_images(db: Database) -> set[int]:
    """Images holding a tag of a label that is not scored (inner keyword, group) or is pending
    (being scored again): their tags are what :func:`settle` computes again."""
    with db.session() as s:
        tree = Tree.load(s)
        ids = [i for i in tree.nodes if not tree.scored(i)]
        ids += list(s.scalars(select(Label.id).where(Label.state == PENDING)))
        out: set[int] = set()
        for chunk in chunks(sorted(set(ids))):
            out.update(s.scalars(select(Tag.image_id).where(Tag.label_id.in_(chunk)).distinct()))
    return out


def settle(settings: Settings) -> tuple[int, int]:
    """Bring the stored tags in line with the vocabulary's tree, from stored embeddings (no photo
    read): the images holding tags of labels no longer scored or being scored again keep their
    best ``top_n`` of the scored labels, then the pending labels are scored for every tagged image
    and switch to active (:func:`tagger.relabel.score_new_labels`). Returns (images scored for
    the pending labels, images scored again)."""
    from migrations import get_database
    from tagger import relabel

    db = get_database(settings.db_url)
    stale = stale_images(db)
    again = relabel.refill(settings, stale) if stale else 0
    with db.session() as s:  # tags no stored embedding could score again (an old version's)
        tree = Tree.load(s)
        for chunk in chunks([i for i in tree.nodes if not tree.scored(i)]):
            s.execute(delete(Tag).where(Tag.label_id.in_(chunk)))
    return relabel.score_new_labels(settings), again


def remove_labels(settings: Settings, names: Sequence[str]) -> tuple[int, int]:
    """``tagscope labels remove`` in a tree: the children of a removed label move up to its parent,
    a parent left with no children is scored (it is a leaf now), then the labels and their tags go
    (:func:`tagger.relabel.remove_labels`). Returns (labels removed, images scored again)."""
    from migrations import get_database
    from tagger import relabel

    db = get_database(settings.db_url)
    with db.session() as s:
        labels = list(s.scalars(select(Label).where(Label.state != REMOVING)))
        doomed = {label.id for label in labels if label.name in set(names)}
        tree, was = _tree(labels), _scored(_tree(labels))
        for label in labels:
            if label.id in doomed:
                label.parent_id = None  # its children move up: nothing refers to it when it goes
            elif label.parent_id in doomed:
                up = [a.id for a in tree.ancestors(label.id) if a.id not in doomed]
                label.parent_id = up[-1] if up else None
        kept = [label for label in labels if label.id not in doomed]
        now = _scored(_tree(kept))
        for label in kept:
            if label.id in now and label.id not in was and label.state == ACTIVE:
                label.state = PENDING
    removed, rescored = relabel.remove_labels(settings, list(names))
    scored, again = settle(settings)
    return removed, rescored + again + scored


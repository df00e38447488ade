"""The vocabulary as a keyword tree, the way people keep keywords in Lightroom, digiKam or Immich.

Each label may have a parent (``labels.parent_id``). A keyword without children (a leaf) is
scored by the model; a keyword with children is implied by them (a photo with a matching ``Dog``
has ``Mammals`` and ``Animals``), never scored itself; a ``group`` ([Name] in a Lightroom keyword
file) only organises: never scored, never written as a keyword, though it stays in the paths
under it so that the tree reads back the same. Synonyms join their keyword's prompts and are
written with it. Labels that were never put in a tree are leaves at the top.

:class:`Tree` is read once per request or export (one query of the ``labels`` table) and
answers paths, descendants and what a keyword writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.schema import GROUP, Label

REMOVING = "removing"


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    parent_id: int | None
    kind: str
    synonyms: tuple[str, ...] = ()

    @property
    def is_group(self) -> bool:
        return self.kind == GROUP


@dataclass
class Tree:
    nodes: dict[int, Node]
    children: dict[int | None, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.children:
            for node in sorted(self.nodes.values(), key=lambda n: n.id):
                parent = node.parent_id if node.parent_id in self.nodes else None
                self.children.setdefault(parent, []).append(node.id)
        self._by_name = {n.name.lower(): n for n in self.nodes.values()}

    @classmethod
    def load(cls, s: Session) -> Tree:
        """Every label not being removed, as a tree."""
        rows = s.execute(select(Label.id, Label.name, Label.parent_id, Label.kind, Label.synonyms)
                         .where(Label.state != REMOVING))
        return cls({i: Node(i, n, p, k, tuple(syn or ())) for i, n, p, k, syn in rows})

    def by_name(self, name: str) -> Node | None:
        return self._by_name.get(" ".join(name.split()).lower())

    def roots(self) -> list[Node]:
        return [self.nodes[i] for i in self.children.get(None, [])]

    def kids(self, node_id: int) -> list[Node]:
        return [self.nodes[i] for i in self.children.get(node_id, [])]

    def is_leaf(self, node_id: int) -> bool:
        return not self.children.get(node_id)

    def scored(self, node_id: int) -> bool:
        """Whether the model scores this label: a keyword with no children."""
        return self.is_leaf(node_id) and not self.nodes[node_id].is_group

    def path(self, node_id: int) -> list[Node]:
        """The nodes from the root down to ``node_id`` (a loop in stored parents is cut)."""
        out: list[Node] = []
        seen: set[int] = set()
        current: int | None = node_id
        while current is not None and current in self.nodes and current not in seen:
            seen.add(current)
            out.append(self.nodes[current])
            current = self.nodes[current].parent_id
        return out[::-1]

    def path_names(self, node_id: int) -> list[str]:
        return [n.name for n in self.path(node_id)]

    def in_tree(self, node_id: int) -> bool:
        """Whether the label has a parent or children (else it is a flat label)."""
        return self.nodes[node_id].parent_id in self.nodes or not self.is_leaf(node_id)

    def descendants(self, node_id: int) -> set[int]:
        """The node and every node under it."""
        out, todo = set(), [node_id]
        while todo:
            current = todo.pop()
            if current not in out:
                out.add(current)
                todo.extend(self.children.get(current, []))
        return out

    def ancestors(self, node_id: int) -> list[Node]:
        return self.path(node_id)[:-1]

    def written(self, node_id: int) -> list[str]:
        """What ``dc:subject`` gets for a matching keyword, as Lightroom writes it: the keyword,
        its ancestors (groups left out) and its synonyms."""
        node = self.nodes[node_id]
        names = [node.name] + [a.name for a in reversed(self.ancestors(node_id)) if not a.is_group]
        return list(dict.fromkeys(names + list(node.synonyms)))

    def implied(self, node_ids: Iterable[int]) -> set[int]:
        """The keywords implied by the given ones: their ancestors that are not groups."""
        return {a.id for i in node_ids if i in self.nodes for a in self.ancestors(i) if not a.is_group}

"""Exports write decisions, with the keyword tree: by default only the matching tags (and the
keywords they imply) leave, in XMP (full paths, parents and synonyms, read back by exiftool), CSV
and JSONL; --top, --min-score and --all still write more; verdicts override decisions; a second
export replaces only what Tagscope wrote; ``import xmp`` adds the trees other tools wrote. On
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from core import feedback
from core.errors import TagscopeError
from core.schema import GROUP, KEYWORD, Image, Label, LabelCutoff, Tag, collection_model_version
from core.settings import load_settings
from migrations import get_database
from tagger.exchange import xmp
from tests.commands import run_cli
from tests.exiftool import need_exiftool, read_back, write_with_exiftool
from tests.photos import photos_subset

# The tree put over the synthetic vocabulary: child -> parent; "Colours" only organises (a group).
PARENTS = {"Round": "Shapes", "circle": "Round", "crescent": "Round", "ring": "Round", "heart": "Shapes",
           "star": "Shapes", "red thing": "Colours", "blue thing": "Colours"}
GROUPS = {"Colours"}
SYNONYMS = {"red thing": ["scarlet thing"], "circle": ["disc"]}
NOTHING = "cross"  # its rule: nothing matches
MINE = "star"  # a person's threshold: every stored tag matches


@pytest.fixture(scope="module", autouse=True)
def exiftool():
    need_exiftool()


def path_of(label: str, root: str = "Tagscope") -> list[str]:
    if label not in PARENTS and label not in PARENTS.values():
        return [root, label]
    out = [label]
    while out[0] in PARENTS:
        out.insert(0, PARENTS[out[0]])
    return out


def above(label: str) -> list[str]:
    """The keywords a matching label implies (groups left out)."""
    return [a for a in path_of(label)[:-1] if a not in GROUPS] if label in PARENTS else []


def written(label: str) -> list[str]:
    return [label] + above(label)[::-1] + SYNONYMS.get(label, [])


class Collection:
    """12 tagged photos with the tree above and a rule for every label: each label matches from its
    median stored score (so about half its tags match), ``NOTHING`` never, ``MINE`` always."""

    def __init__(self, home_env, synthetic_photos, tmp_path):
        self.home, self.env, url = home_env
        self.photos = photos_subset(synthetic_photos, tmp_path / "photos", 12)
        run_cli("tag", str(self.photos), home=self.home, **self.env)
        self.db = get_database(url)
        with self.db.session() as s:
            version = collection_model_version(s).id
            rows = s.execute(select(Image.path, Label.name, Tag.score).join(Tag, Tag.image_id == Image.id)
                             .join(Label, Label.id == Tag.label_id).where(Tag.model_version_id == version)
                             .order_by(Image.path, Tag.score.desc(), Label.name)).all()
            self.stored = {}  # photo file name -> [(label, score)], best first
            for path, name, score in rows:
                self.stored.setdefault(Path(path).name, []).append((name, score))
            by_label = {}
            for name, score in [t for tags in self.stored.values() for t in tags]:
                by_label.setdefault(name, []).append(score)
            self.cutoff = {name: statistics.median(scores) for name, scores in by_label.items()}
            self.cutoff[NOTHING] = None
            ids = dict(s.execute(select(Label.name, Label.id)).all())
            s.execute(delete(LabelCutoff).where(LabelCutoff.model_version_id == version))
            s.add_all(LabelCutoff(label_id=ids[name], model_version_id=version, threshold=threshold, slope=20.0,
                                  source="collection", images=len(self.stored))  # as tagger.decisions stores them
                      for name, threshold in self.cutoff.items())
            self._tree(s, ids)
        self.cli("labels", "set", MINE, "--threshold", "0")
        self.cutoff[MINE] = 0.0
        self.verdicts: dict[str, dict[str, str]] = {}

    def _tree(self, s, ids: dict[str, int]) -> None:
        for name in ("Shapes", "Round", "Colours"):
            label = Label(name=name, source="user", state="active", kind=GROUP if name in GROUPS else KEYWORD)
            s.add(label)
            s.flush()
            ids[name] = label.id
        for child, parent in PARENTS.items():
            s.execute(update(Label).where(Label.id == ids[child])
                      .values(parent_id=ids[parent], synonyms=SYNONYMS.get(child)))

    def cli(self, *args: str, **env: str):
        return run_cli(*args, home=self.home, **{**self.env, **env})

    def image_id(self, name: str) -> int:
        with self.db.session() as s:
            return s.scalar(select(Image.id).where(Image.path == str(self.photos / name)))

    def verdict(self, name: str, label: str, what: str) -> None:
        self.cli("feedback", what, str(self.image_id(name)), label)
        self.verdicts.setdefault(name, {})[label] = what

    def matches(self, name: str) -> list[str]:
        """The photo's matching tags as decided here, verdicts applied (confirmed first)."""
        verdicts = self.verdicts.get(name, {})
        confirmed = [k for k, v in verdicts.items() if v == feedback.CONFIRM]
        model = [label for label, score in self.stored[name] if label not in verdicts
                 and self.cutoff[label] is not None and score >= self.cutoff[label]]
        return confirmed + model

    def labels(self, name: str) -> set[str]:
        """What the photo has: its matches and the keywords they imply."""
        rejected = {k for k, v in self.verdicts.get(name, {}).items() if v == feedback.REJECT}
        return set(self.matches(name)) | {a for m in self.matches(name) for a in above(m)} - rejected


@pytest.fixture
def tagged(home_env, synthetic_photos, tmp_path) -> Collection:
    return Collection(home_env, synthetic_photos, tmp_path)


def pick(tagged: Collection, wanted) -> tuple[str, str]:
    """The first (photo, label) of the stored tags for which ``wanted(label, score, matches)``."""
    for name, tags in tagged.stored.items():
        for label, score in tags:
            threshold = tagged.cutoff[label]
            if wanted(label, score, threshold is not None and score >= threshold):
                return name, label
    raise AssertionError("no such tag in the collection")


def stored_of(tagged: Collection, name: str) -> list[tuple[str, float]]:
    """The photo's stored tags without a verdict, best first."""
    return [(k, v) for k, v in tagged.stored[name] if tagged.verdicts.get(name, {}).get(k) is None]


def jsonl_rows(path: Path) -> dict[str, dict]:
    return {Path(row["file"]).name: row for row in map(json.loads, path.read_text().splitlines())}


def test_every_export_writes_the_matches_with_their_paths_and_verdicts_override(tagged, tmp_path):
    # a person confirms a tag that does not match, and rejects one that does
    confirmed = pick(tagged, lambda label, score, match: label in ("circle", "crescent", "ring") and not match)
    rejected = pick(tagged, lambda label, score, match: match and label not in PARENTS and label != MINE)
    tagged.verdict(*confirmed, feedback.CONFIRM)
    tagged.verdict(*rejected, feedback.REJECT)
    tagged.verdict(confirmed[0], "my cat", feedback.CONFIRM)  # in no vocabulary: under the root
    assert json.loads(tagged.cli("export", "xmp", str(tagged.photos)).stdout) == {"sidecars": 12, "failed": 0}
    tagged.cli("export", "csv", str(tmp_path / "tags.csv"), str(tagged.photos))
    tagged.cli("export", "jsonl", str(tmp_path / "tags.jsonl"), str(tagged.photos))
    with open(tmp_path / "tags.csv", newline="", encoding="utf-8") as fh:
        table = {Path(row["path"]).name: row for row in csv.DictReader(fh)}
    lines = jsonl_rows(tmp_path / "tags.jsonl")
    assert sum(len(tagged.matches(n)) for n in tagged.stored) < sum(len(t) for t in tagged.stored.values())
    for name in tagged.stored:
        matches = tagged.matches(name)
        back = read_back(xmp.sidecar_path(tagged.photos / name))
        assert sorted(back.get("HierarchicalSubject", [])) == sorted("|".join(path_of(m)) for m in matches), name
        assert sorted(back.get("TagsList", [])) == sorted("/".join(path_of(m)) for m in matches), name
        assert set(back.get("Subject", [])) == {w for m in matches for w in written(m)}, name
        assert set(filter(None, table[name]["tags"].split(";"))) == tagged.labels(name) and not table[name]["also"]
        assert set(lines[name]["labels"]) == tagged.labels(name)
        assert {t["label"] for t in lines[name]["tags"]} == tagged.labels(name)
        assert all(t["match"] and 0.5 <= t["confidence"] <= 1 for t in lines[name]["tags"])
    photo, label = confirmed
    back = read_back(xmp.sidecar_path(tagged.photos / photo))
    assert f"Shapes|Round|{label}" in back["HierarchicalSubject"] and "Tagscope/my cat" in back["TagsList"]
    assert {label, "Round", "Shapes"} <= set(back["Subject"])
    assert {"label": label, "confirmed": True, "match": True, "confidence": 1.0}.items() <= \
        next(t for t in lines[photo]["tags"] if t["label"] == label).items()
    assert any("disc" in read_back(xmp.sidecar_path(tagged.photos / n)).get("Subject", [])
               for n in tagged.stored if "circle" in tagged.matches(n))  # a synonym goes with its keyword
    assert rejected[1] not in lines[rejected[0]]["labels"]
    assert not any(NOTHING in row["labels"] for row in lines.values())
    assert all(MINE in row["labels"] for name, row in lines.items() if MINE in dict(tagged.stored[name]))
    assert {"Shapes", "Round"} & {label for row in lines.values() for label in row["labels"]}  # implied somewhere


def test_top_min_score_and_all_still_write_more(tagged, tmp_path):
    rejected = pick(tagged, lambda label, score, match: match and label not in PARENTS and label != MINE)
    tagged.verdict(*rejected, feedback.REJECT)
    options = {"top": ["--top", "2"], "min": ["--min-score", "0.3"], "all": ["--all"]}
    rows = {}
    for key, option in options.items():
        tagged.cli("export", "jsonl", str(tmp_path / f"{key}.jsonl"), str(tagged.photos), *option)
        rows[key] = jsonl_rows(tmp_path / f"{key}.jsonl")
    for name in tagged.stored:
        model = stored_of(tagged, name)
        expect = {"top": model[:2], "min": [(k, v) for k, v in model if v >= 0.3], "all": model}
        for key, tags in expect.items():
            exported = [t for t in rows[key][name]["tags"] if not t.get("implied")]
            assert sorted((t["label"], t["score"]) for t in exported) == sorted(tags), (key, name)
            assert set(rows[key][name]["labels"]) <= tagged.labels(name)
        assert set(rows["all"][name]["labels"]) == tagged.labels(name)
        assert all(t["match"] == (t["label"] in tagged.matches(name)) for t in rows["all"][name]["tags"]
                   if not t.get("implied"))
    assert rejected[1] not in {t["label"] for t in rows["all"][rejected[0]]["tags"]}
    tagged.cli("export", "xmp", str(tagged.photos), "--top", "1")
    for name in tagged.stored:
        best = stored_of(tagged, name)[0][0]
        assert read_back(xmp.sidecar_path(tagged.photos / name))["HierarchicalSubject"] == ["|".join(path_of(best))]
    tagged.cli("export", "csv", str(tmp_path / "all.csv"), str(tagged.photos), "--all")
    with open(tmp_path / "all.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            name = Path(row["path"]).name
            assert set(filter(None, row["tags"].split(";"))) == tagged.labels(name)
            assert set(filter(None, row["also"].split(";"))) == \
                {label for label, _ in stored_of(tagged, name)} - set(tagged.matches(name))
    failed = tagged.cli("export", "csv", str(tmp_path / "x.csv"), "--all", "--top", "3", check=False)
    assert failed.returncode == 2 and "leave out --top" in failed.stderr


def test_a_second_export_replaces_only_what_tagscope_wrote(tagged):
    name = next(n for n in tagged.stored if tagged.matches(n))
    tagged.cli("export", "xmp", str(tagged.photos / name))
    sidecar = xmp.sidecar_path(tagged.photos / name)
    first = read_back(sidecar)
    # a person adds keywords with another tool, one of them under Tagscope's own root
    write_with_exiftool(sidecar, "-XMP-lr:HierarchicalSubject+=Tagscope|kept by me",
                        "-XMP-lr:HierarchicalSubject+=People|Anna", "-XMP-digiKam:TagsList+=People/Anna",
                        "-XMP-dc:Subject+=Anna", "-XMP-dc:Subject+=kept by me", "-XMP-xmp:Rating=3")
    tagged.cli("labels", "set", MINE, "--threshold", "auto")
    with tagged.db.session() as s:  # now nothing matches: only a confirmed tag is left to write
        s.execute(update(LabelCutoff).values(threshold=None))
    tagged.verdict(name, "cross", feedback.CONFIRM)
    tagged.cli("export", "xmp", str(tagged.photos / name), TAGSCOPE_XMP_ROOT="Found by Tagscope")
    second = read_back(sidecar)
    assert second["HierarchicalSubject"] == ["Tagscope|kept by me", "People|Anna", "Found by Tagscope|cross"]
    assert second["TagsList"] == ["People/Anna", "Found by Tagscope/cross"]
    assert second["Subject"] == ["Anna", "kept by me", "cross"] and second["Rating"] == 3
    assert set(first["Subject"]) - {"Anna", "kept by me", "cross"}  # Tagscope's first keywords went


def test_import_adds_the_keyword_trees_other_tools_wrote(tagged):
    name = next(iter(tagged.stored))
    sidecar = xmp.sidecar_path(tagged.photos / name)
    sidecar.write_text(OTHER_TOOL)
    summary = json.loads(tagged.cli("import", "xmp", str(tagged.photos / name)).stdout)
    assert summary["unreadable"] == 0 and summary["labels_added"] >= 5
    with tagged.db.session() as s:
        labels = {n: (p, k) for n, p, k in s.execute(select(Label.name, Label.parent_id, Label.kind))}
        names = {i: n for n, i in s.execute(select(Label.name, Label.id))}
    parent = {n: names.get(p) for n, (p, _) in labels.items()}
    assert (parent["Paris"], parent["France"], parent["Places"]) == ("France", "Places", None)
    assert (parent["Anna"], parent["Family"], parent["People"]) == ("Family", "People", None)
    assert "old flat tag" not in labels and "Tagscope" not in labels  # under Tagscope's root: not a tree
    verdicts = feedback.for_image(tagged.db, tagged.image_id(name))
    assert {verdicts.get(k) for k in ("Paris", "Anna")} == {feedback.CONFIRM}
    assert summary["scored"] == 12  # the new leaves scored for every tagged photo, then shown
    with tagged.db.session() as s:
        assert set(s.scalars(select(Label.state).where(Label.name.in_(["Paris", "Anna", "France"])))) == {"active"}


OTHER_TOOL = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/">
   <dc:subject><rdf:Bag><rdf:li>Paris</rdf:li><rdf:li>France</rdf:li><rdf:li>Anna</rdf:li></rdf:Bag></dc:subject>
   <digiKam:TagsList><rdf:Seq><rdf:li>People/Family/Anna</rdf:li></rdf:Seq></digiKam:TagsList>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>Places|France|Paris</rdf:li><rdf:li>Tagscope|old flat tag</rdf:li>
   </rdf:Bag></lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


# -- the sidecar merge itself, and the setting (no database) ---------------------------------------------

def test_paths_and_keywords_read_back_from_a_sidecar():
    data = xmp.merge_keywords(OTHER_TOOL.encode(), ["dog", "Mammals", "doggy", "a/b"],
                              [["Animals", "Mammals", "dog"], ["Tagscope", "a/b"]])
    assert xmp.paths_in(data, "x") == [["Places", "France", "Paris"], ["Animals", "Mammals", "dog"],
                                       ["People", "Family", "Anna"]]
    assert ["Places", "France", "Paris"] not in xmp.paths_in(data, "x", root_name="places")
    words = xmp.keywords_in(data, "x")  # Tagscope's own paths are not read as "a-b"; a person's "old flat tag" is
    assert words == ["Paris", "France", "Anna", "dog", "Mammals", "doggy", "a/b", "old flat tag"]


def test_a_sidecar_of_an_older_tagscope_gives_up_its_whole_root():
    older = xmp.merge_keywords(None, ["cat"], [["Tagscope", "cat"]]).decode()
    for field in ("HierarchicalSubject", "TagsList"):  # an older Tagscope recorded only dc:subject
        start = older.index(f"<tagscope:{field}>")
        older = older[:start] + older[older.index(f"</tagscope:{field}>") + len(f"</tagscope:{field}>"):]
    assert "tagscope:TagsList" not in older and "Tagscope/cat" in older
    data = xmp.merge_keywords(older.encode(), ["dog"], [["Animals", "dog"]])
    assert xmp.paths_in(data, "x", root_name="none") == [["Animals", "dog"]]
    assert xmp.keywords_in(data, "x") == ["dog"]


def test_the_xmp_root_setting():
    assert load_settings(environ={}).xmp_root == "Tagscope"
    assert load_settings(environ={"TAGSCOPE_XMP_ROOT": " Auto  tags "}).xmp_root == "Auto tags"
    for bad in ("", "a|b", "a/b"):
        with pytest.raises(TagscopeError, match="xmp_root"):
            load_settings(environ={}, xmp_root=bad)

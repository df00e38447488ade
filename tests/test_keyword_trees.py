"""The user's keyword tree as the vocabulary, through the real command line on SQLite and
PostgreSQL: `labels import` (detected formats), `labels export` (a Lightroom file round-trips
byte for byte), `labels list --tree`; a bad file imports nothing; only the leaves are scored, and
changing the tree of a tagged collection stores what a full re-tag stores."""

from __future__ import annotations

import json

from sqlalchemy import select

from core.schema import Label
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset
from .test_relabel import assert_same_tags, stored_tags

TREE = ("[Synthetic world]\n"
        "\tShapes\n"
        "\t\tcircle\n"
        "\t\t\t{round shape}\n"
        "\t\tsquare\n"
        "\tColours\n"
        "\t\tred thing\n"
        "\t\tblue thing\n"
        "\t\t\t{azure thing}\n"
        "striped background\n")
LEAVES = {"circle", "square", "red thing", "blue thing", "striped background"}


def labels_in(url: str) -> dict[str, tuple]:
    with get_database(url).session() as s:
        rows = s.execute(select(Label.id, Label.name, Label.parent_id, Label.kind, Label.synonyms)).all()
    names = {i: n for i, n, *_ in rows}
    return {n: (names.get(p), k, syn or []) for _, n, p, k, syn in rows}


def test_a_lightroom_file_round_trips_through_the_vocabulary(home_env, tmp_path):
    home, env, url = home_env
    source, back = tmp_path / "keywords.txt", tmp_path / "back.txt"
    source.write_text(TREE, encoding="utf-8")
    out = run_cli("labels", "import", str(source), home=home, **env).stdout
    assert out == f"added 8 label(s) from {source} (lightroom, 8 keywords), 0 already present\n"
    assert labels_in(url)["blue thing"] == ("Colours", "keyword", ["azure thing"])
    assert labels_in(url)["Synthetic world"] == (None, "group", [])
    out = run_cli("labels", "export", str(back), home=home, **env).stdout
    assert out == f"wrote 8 keywords to {back} (Lightroom keyword file)\n"
    assert back.read_bytes() == source.read_bytes()
    assert run_cli("labels", "export", "-", home=home, **env).stdout == TREE
    listed = run_cli("labels", "list", "--tree", home=home, **env).stdout
    assert listed.splitlines()[:4] == ["[Synthetic world]", "  Shapes", "    circle {round shape}", "    square"]
    assert listed.splitlines()[-1] == "striped background"
    document = json.loads(run_cli("labels", "list", "--tree", "--json", home=home, **env).stdout)
    shapes = document[0]["children"][0]
    assert (document[0]["kind"], shapes["name"], shapes["scored"]) == ("group", "Shapes", False)
    assert shapes["children"][0] == {"name": "circle", "kind": "keyword", "synonyms": ["round shape"],
                                     "state": "active", "scored": True, "children": []}
    again = run_cli("labels", "import", str(back), home=home, **env).stdout
    assert "added 0 label(s)" in again and "8 already present" in again and "moved" not in again
    run_cli("labels", "export", str(back), home=home, **env)
    assert back.read_bytes() == source.read_bytes()


def test_path_lists_and_plain_lists_join_the_tree_without_breaking_it(home_env, tmp_path):
    home, env, url = home_env
    (tmp_path / "tree.txt").write_text(TREE)
    run_cli("labels", "import", str(tmp_path / "tree.txt"), home=home, **env)
    (tmp_path / "paths.txt").write_text("Synthetic world/Shapes/star\nSynthetic world/Shapes/circle/red circle\n")
    out = run_cli("labels", "import", str(tmp_path / "paths.txt"), home=home, **env).stdout
    assert "added 2 label(s)" in out and "(slash, 5 keywords)" in out
    assert "1 now implied by their children, no longer scored" in out  # circle has a child now
    labels = labels_in(url)
    assert labels["red circle"][0] == "circle" and labels["star"][0] == "Shapes"
    assert labels["Synthetic world"] == (None, "group", [])  # a path does not say: the group stays one
    assert labels["circle"] == ("Shapes", "keyword", ["round shape"])
    (tmp_path / "plain.txt").write_text("# flat\nsquare\nshiny thing\n")
    run_cli("labels", "import", str(tmp_path / "plain.txt"), home=home, **env)
    assert labels_in(url)["square"][0] == "Shapes" and labels_in(url)["shiny thing"][0] is None
    (tmp_path / "move.txt").write_text("Colours|square\n")
    out = run_cli("labels", "import", str(tmp_path / "move.txt"), "--format", "paths", home=home, **env).stdout
    assert "(1 moved)" in out and labels_in(url)["square"][0] == "Colours"


def test_a_bad_file_imports_nothing(home_env, tmp_path):
    home, env, url = home_env
    bad = tmp_path / "bad.txt"
    bad.write_text(TREE + "Pets\n\tRed Thing\n")
    proc = run_cli("labels", "import", str(bad), home=home, check=False, **env)
    assert proc.returncode == 2
    assert proc.stderr == (f"error: {bad} line 12: 'Red Thing' is already on line 7: a keyword appears once in "
                           "the tree (names are unique); remove or rename one\n")
    assert labels_in(url) == {}
    (tmp_path / "tree.txt").write_text(TREE)
    run_cli("labels", "import", str(tmp_path / "tree.txt"), home=home, **env)
    before = labels_in(url)
    loop = tmp_path / "loop.txt"
    loop.write_text("new keyword\ncircle\n\tShapes\n")  # Shapes holds circle: circle cannot hold it
    proc = run_cli("labels", "import", str(loop), home=home, check=False, **env)
    assert proc.returncode == 2 and f"{loop} line 3: 'Shapes' would be inside itself" in proc.stderr
    assert labels_in(url) == before  # not even "new keyword"
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"Animals\n" + b"x" * (10 * 2**20) + b"\n")
    proc = run_cli("labels", "import", str(huge), home=home, check=False, **env)
    assert proc.returncode == 2 and f"{huge} line 2: longer than 4096 bytes" in proc.stderr
    assert labels_in(url) == before


def test_an_imported_tree_is_the_vocabulary_a_first_tag_run_scores_leaves_of(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    (tmp_path / "tree.txt").write_text(TREE)
    run_cli("labels", "import", str(tmp_path / "tree.txt"), home=home, **env)
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 24)
    out = run_cli("tag", str(photos), home=home, **env).stdout
    assert "vocabulary:" not in out  # nothing seeded on top of the imported tree
    assert set(labels_in(url)) == LEAVES | {"Synthetic world", "Shapes", "Colours"}
    tags = stored_tags(url)
    assert len(tags) == 24 and all(set(t) == LEAVES for t in tags.values())


def test_changing_the_tree_of_a_tagged_collection_stores_what_a_retag_stores(home_env, synthetic_photos, tmp_path):
    home, env, url = home_env
    env = {**env, "TAGSCOPE_TOP_N": "8"}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", 24)
    run_cli("tag", str(photos), home=home, **env)  # the model's 126 flat labels
    before = stored_tags(url)
    assert any("circle" in t for t in before.values()) and any("star" in t for t in before.values())
    change = tmp_path / "change.txt"
    change.write_text("[Shapes]\n\tcircle\n\t\tred circle\n\t\tblue circle\n\tstar\n\t\t{five-pointed star}\n")
    out = run_cli("labels", "import", str(change), home=home, **env).stdout
    assert "added 1 label(s)" in out and "(4 moved, " in out and "1 now implied by their children" in out
    changed = stored_tags(url)
    assert not any("circle" in t for t in changed.values())  # inner: implied, never scored
    assert all(len(t) == 8 for t in changed.values())
    assert any(changed[i]["star"] != before[i]["star"] for i in changed if "star" in changed[i] and "star" in before[i])
    run_cli("tag", str(photos), "--retag", home=home, **env)
    assert_same_tags(changed, stored_tags(url))
    out = run_cli("labels", "remove", "red circle", "blue circle", home=home, **env).stdout
    assert out.startswith("removed 2 label(s)")
    assert labels_in(url)["circle"] == ("Shapes", "keyword", [])  # a leaf again: scored
    removed = stored_tags(url)
    assert any("circle" in t for t in removed.values()) and all(len(t) == 8 for t in removed.values())
    run_cli("tag", str(photos), "--retag", home=home, **env)
    assert_same_tags(removed, stored_tags(url))
    out = run_cli("labels", "remove", "Shapes", home=home, **env).stdout
    assert out.startswith("removed 1 label(s)") and labels_in(url)["circle"][0] is None


def test_sidecar_paths_join_the_tree_and_leave_a_person_s_tree_as_it_is(db_at_head):
    from tagger.keyword_files import parse_text
    from tagger.keyword_tree_store import add_paths, import_tree
    from tagger.vocabulary import seed_labels

    db = get_database(db_at_head)
    seed_labels(db, ["dog", "cat", "puppy"], source="model")
    import_tree(db, parse_text("Pets\n\tcat\n"))
    added = add_paths(db, [["Animals", "Mammals", "Dog"], ["Animals", "Mammals", "cat"], ["Animals", "x" * 201, "y"],
                           ["dog", "puppy"], ["puppy", "dog"], ["Animals", "Birds"]], "xmp")
    assert added == ["Animals", "Mammals", "Birds"]  # the 201-character name ends its path
    labels = labels_in(db_at_head)
    assert labels["dog"][0] == "Mammals"  # in no tree before: it joins the sidecar's
    assert labels["cat"][0] == "Pets"  # in a person's tree: stays there
    assert labels["puppy"][0] == "dog"  # and never under itself (the next path would have made a loop)
    with db.session() as s:
        states = dict(s.execute(select(Label.name, Label.state)).all())
    assert states["Birds"] == "pending" and states["Mammals"] == "active" and states["dog"] == "active"
    assert add_paths(db, [["Animals", "Mammals", "Dog"]], "xmp") == []

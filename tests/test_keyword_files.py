"""Keyword files read into a tree and written back (tagger.keyword_files): Lightroom keyword
exports, `A|B|C` and `A/B/C` path lists and plain label lists, detected; bad files refused with
one line naming the line and the fix."""

from __future__ import annotations

import tracemalloc

import pytest

from core.errors import TagscopeError
from tagger.keyword_files import MAX_LINE_BYTES, format_lightroom, parse_text, read_keyword_file, read_lines

LIGHTROOM = ("[Places]\n"
             "\tFrance\n"
             "\t\tParis\n"
             "\t\t\t{Paname}\n"
             "Animals\n"
             "\t{Beasts}\n"
             "\tMammals\n"
             "\t\tDog\n"
             "\t\t\t{hound}\n"
             "\t\t\t{doggy}\n"
             "\t\tCat\n"
             "#travel\n")


def shape(tree) -> list[tuple]:
    return [(depth, node.name, node.kind, node.synonyms, parent.name if parent else None)
            for node, parent, depth in tree.walk()]


def test_a_lightroom_keyword_export_is_a_tree_and_formats_back_byte_for_byte():
    tree = parse_text(LIGHTROOM)
    assert tree.format == "lightroom"
    assert shape(tree) == [
        (0, "Places", "group", [], None),
        (1, "France", "keyword", [], "Places"),
        (2, "Paris", "keyword", ["Paname"], "France"),
        (0, "Animals", "keyword", ["Beasts"], None),
        (1, "Mammals", "keyword", [], "Animals"),
        (2, "Dog", "keyword", ["hound", "doggy"], "Mammals"),
        (2, "Cat", "keyword", [], "Mammals"),
        (0, "#travel", "keyword", [], None),  # no comments in Lightroom's format: a hashtag keyword
    ]
    assert [node.line for node, _, _ in tree.walk()] == [1, 2, 3, 5, 7, 8, 11, 12]
    assert format_lightroom(tree) == LIGHTROOM
    assert format_lightroom(parse_text(format_lightroom(tree))) == LIGHTROOM


def test_a_synonym_belongs_to_the_keyword_one_tab_above_it_even_after_its_children():
    tree = parse_text("Animals\n\tDog\n\t\tPuppy\n\t\t{canine}\n\t{beast}\n\t{Animals}\n\t{beast}\n")
    assert tree.find("dog").synonyms == ["canine"]
    assert tree.find("Animals").synonyms == ["beast"]  # its own name and a repeat are dropped
    assert [c.name for c in tree.find("dog").children] == ["Puppy"]


def test_path_lists_make_a_node_of_every_prefix():
    for text, fmt in (("Animals|Mammals|Dog\nAnimals|Mammals|Cat\nAnimals|Birds\nSunset\n", "pipe"),
                      ("Animals/Mammals/Dog\nAnimals/Mammals/Cat\nAnimals/Birds\nSunset\n", "slash")):
        tree = parse_text(text)
        assert tree.format == fmt
        assert [(d, n.name, p.name if p else None) for n, p, d in tree.walk()] == [
            (0, "Animals", None), (1, "Mammals", "Animals"), (2, "Dog", "Mammals"), (2, "Cat", "Mammals"),
            (1, "Birds", "Animals"), (0, "Sunset", None)]
        assert all(n.kind is None and n.synonyms is None for n, _, _ in tree.walk())  # not said: kept
    explicit_prefix = parse_text("# from hierarchicalSubject\nA|B|C\nA|B\n\nA\n")
    assert [n.name for n, _, _ in explicit_prefix.walk()] == ["A", "B", "C"]


def test_plain_lists_keep_todays_format():
    tree = parse_text("# my labels\nbirthday cake\n  sunset   over the sea \n\nlighthouse\r\n")
    assert tree.format == "plain"
    assert [(n.name, n.line, n.children) for n in tree.roots] == [
        ("birthday cake", 2, []), ("sunset over the sea", 3, []), ("lighthouse", 5, [])]


@pytest.mark.parametrize("text, detected", [
    ("A\n\tB\n", "lightroom"),
    ("[Group]\n", "lightroom"),
    ("Dog\n  {hound}\n", "lightroom"),  # braces say Lightroom; its spaces are then refused
    ("A|B\nC/D\n", "pipe"),
    ("A/B\nC\n", "slash"),
    ("# see https://example.org/labels\nsunset\n", "plain"),
    ("sunset\n  beach\n", "plain"),
])
def test_the_format_is_detected(text, detected):
    if "  {" in text:
        with pytest.raises(TagscopeError, match="line 2: indented with spaces"):
            parse_text(text)
    else:
        assert parse_text(text).format == detected


def test_a_format_can_be_forced():
    assert [n.name for n in parse_text("AC/DC\nR&B\n", "plain").roots] == ["AC/DC", "R&B"]
    assert [n.name for n, _, _ in parse_text("AC/DC|Albums\n", "paths").walk()] == ["AC/DC", "Albums"]
    assert parse_text("A/B\n", "paths").format == "slash"
    assert parse_text("A\n\tB\n", "plain").format == "plain"
    assert parse_text("Sunset\n", "lightroom").format == "lightroom"
    with pytest.raises(TagscopeError, match="unknown keyword file format 'xml': use one of auto, lightroom"):
        parse_text("A\n", "xml")


BAD = [
    ("Animals\n\tDog\n  \tCat\n", 3, "mixed tabs and spaces", "use tabs only"),
    ("Animals\n    Dog\n\tCat\n", 2, "indented with spaces", "use tabs only"),
    ("Animals\n\t\tDog\n", 2, "indented 2 TABs where at most 1 fit", "one TAB deeper than its parent"),
    ("\tAnimals\n", 1, "indented 1 TABs where at most 0 fit", "one TAB deeper"),
    ("Animals\n\t[]\n", 2, "empty name", "give the keyword a name"),
    ("Animals\n\t{ }\n", 2, "empty name", "delete the line"),
    ("Animals||Dog\n", 1, "empty name", "give the keyword a name"),
    ("Animals\n\tDog\nPets\n\tdog\n", 4, "'dog' is already on line 2", "remove or rename one"),
    ("Animals|Dog\nPets|DOG\n", 2, "'DOG' is already on line 1", "names are unique"),
    ("Animals|Dog\nAnimals|Dog\n", 2, "the path 'Animals|Dog' is already on line 1", "remove one"),
    ("sunset\nbeach\nSunset\n", 3, "'Sunset' is already on line 1", "remove or rename one"),
    ("{hound}\nDog\n", 1, "synonym {hound} with no keyword above it", "one TAB under its keyword"),
    ("Dog\n" + "x" * 201 + "\n", 2, "name of 201 characters (at most 200)", "shorten it"),
    ("Dog\nbad\x00name\n", 2, "control character", "remove it"),
    ("Dog\n\t[[Group]]\n", 2, "in brackets or braces", "rename the keyword"),
]


@pytest.mark.parametrize("text, line, what, fix", BAD, ids=[b[2].split(":")[0][:30] for b in BAD])
def test_a_bad_file_is_refused_with_one_line_naming_its_line_and_the_fix(tmp_path, text, line, what, fix):
    path = tmp_path / "keywords.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TagscopeError) as caught:
        read_keyword_file(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path} line {line}: ")
    assert what in message and fix in message


def test_text_that_is_not_utf8_is_refused_at_its_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Animals\n\tCaf\xe9\n".encode("latin-1"))
    with pytest.raises(TagscopeError, match=r"latin1.txt line 2: not UTF-8 text: save the file as UTF-8$"):
        read_keyword_file(path)
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffAnimals\r\n\tDog\r\n".encode())
    assert [n.name for n, _, _ in read_keyword_file(bom).walk()] == ["Animals", "Dog"]


def test_a_10_mb_line_is_refused_after_reading_no_more_than_the_bound(tmp_path):
    path = tmp_path / "huge.txt"
    with path.open("wb") as f:
        f.write(b"Animals\n\tDog\n")
        f.write(b"\t" + b"x" * (10 * 2**20) + b"\n")
        f.write(b"Cat\n")
    tracemalloc.start()
    try:
        with pytest.raises(TagscopeError) as caught:
            read_lines(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (f"{path} line 3: longer than {MAX_LINE_BYTES} bytes: one keyword or path a line "
                                 "(is this a keyword file?)")
    assert peak < 1 * 2**20  # the line was never read whole


def test_a_line_at_the_bound_is_read(tmp_path):
    path = tmp_path / "long.txt"
    path.write_bytes(b"a" * MAX_LINE_BYTES + b"\r\n" + b"b" * MAX_LINE_BYTES)
    assert [len(t) for _, t in read_lines(path)] == [MAX_LINE_BYTES, MAX_LINE_BYTES]
    path.write_bytes(b"a" * (MAX_LINE_BYTES + 1))
    with pytest.raises(TagscopeError, match="line 1: longer than"):
        read_lines(path)


def test_a_deep_tree_is_read_and_written_without_recursion():
    text = "".join("\t" * depth + f"level {depth}\n" for depth in range(3000))
    tree = parse_text(text)
    assert len(tree) == 3000 and format_lightroom(tree) == text
    assert len(parse_text("|".join(f"k{i}" for i in range(1500)) + "\n")) == 1500


def test_a_missing_file_says_so(tmp_path):
    with pytest.raises(TagscopeError, match="keyword file .*nope.txt does not exist"):
        read_keyword_file(tmp_path / "nope.txt")

"""Full-text search of the words in photos (issue 33, point 2): ``text:"..."`` / ``text:word`` parts
find the photos whose text holds every word (case and accents folded, the last word a prefix, a
long word one letter off), a plain query raises and matches the photos showing its words, ``-``
removes and ``+`` requires with text parts, filters combine, and hits carry the words found in
the API, the CLI and the OpenAPI document; the full-text indexes follow photo_text (triggers on
SQLite, an expression index on PostgreSQL) and a text part costs one statement whatever the number
of photos. On SQLite and PostgreSQL.

The collection is tagged by the real CLI with the ``synthetic`` model; the words are photo_text
rows written here (what OCR would store: the text, its folded form, a confidence, a box), and, end
to end, read by the real OCR engine from photos with rendered words (``tagscope tag --ocr``)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import delete, event, insert, select, text, update

from core.errors import TagscopeError
from core.schema import Image, PhotoText
from core.settings import load_settings
from core.words import fold
from indexer.search import query as grammar
from indexer.search import words as word_search
from migrations import get_database

from .commands import run_cli
from .photos import photos_subset

N = 12  # photos: a/ holds the first half, b/ the others


@dataclass
class Library:
    home: Path
    env: dict
    db: object
    ids: dict[str, int]  # "a/000003.png" -> image id

    def write(self, photo: str, *lines: str, confidence: float = 0.95) -> int:
        """The photo's text lines, as OCR would store them."""
        image_id = self.ids[photo]
        with self.db.session() as s:
            s.execute(insert(PhotoText), [
                {"image_id": image_id, "line": n, "text": line, "folded": fold(line), "confidence": confidence,
                 "language": None, "box": [[0, 10 * n], [100, 10 * n], [100, 10 * n + 9], [0, 10 * n + 9]],
                 "frame_ms": None} for n, line in enumerate(lines)])
        return image_id

    def searcher(self):
        from indexer.search.searcher import Searcher

        return Searcher(load_settings(environ=self.env, home=str(self.home)))

    def find(self, query: str, k: int = 2 * N, **kw):
        return self.searcher().find(query, k=k, **kw)

    def found(self, query: str, **kw) -> list[int]:
        return [h.image_id for h in self.find(query, **kw).hits]

    def cli(self, *args: str):
        return run_cli(*args, home=self.home, **self.env)

    def client(self):
        from web import create_app

        return create_app(load_settings(environ=self.env, home=str(self.home)), {"TESTING": True}).test_client()


@pytest.fixture
def library(home_env, synthetic_photos, tmp_path) -> Library:
    return tagged(*home_env, synthetic_photos, tmp_path)


def tagged(home: Path, env: dict, url: str, synthetic_photos: Path, tmp_path: Path) -> Library:
    """N photos of the synthetic collection in a/ and b/, tagged by the CLI into ``url``."""
    photos = tmp_path / "photos"
    photos_subset(synthetic_photos, photos / "a", N)
    (photos / "b").mkdir()
    for path in sorted((photos / "a").iterdir())[N // 2:]:
        path.rename(photos / "b" / path.name)
    run_cli("tag", str(photos), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        ids = {str(Path(p).relative_to(photos)): i for i, p in s.execute(select(Image.id, Image.path))}
    return Library(home, env, db, ids)


def photo(n: int) -> str:
    """The n-th photo of the collection: a/ holds the first N/2, b/ the others."""
    return f"{'a' if n < N // 2 else 'b'}/{n:06d}.png"


def test_text_parts_in_the_grammar():
    assert [(p.text, p.negative, p.words) for p in grammar.parse('text:"cafe olympia"').parts] == \
        [("cafe olympia", False, True)]
    assert [(p.text, p.negative, p.words) for p in grammar.parse("dog -text:closed").parts] == \
        [("dog", False, False), ("closed", True, True)]
    assert [p.text for p in grammar.parse('text:"c-3po + r2" + beach').parts] == ["c-3po + r2", "beach"]
    assert grammar.parse("context:dog").simple and not grammar.parse("text:dog").simple
    for bad, fix in (("text: dog", "right after its colon"), ("2:text:dog", "takes no weight"),
                     ('text:"!!"', "letters or digits"), ("-text:dog", "needs one text to look for")):
        with pytest.raises(TagscopeError, match=fix):
            grammar.parse(bad)
    assert word_search.one_off("olympia", "0lympia") and word_search.one_off("restaurant", "restaurnt")
    assert not word_search.one_off("olympia", "olympia") and not word_search.one_off("olympia", "olymp")


def test_a_photo_is_found_by_a_word_it_shows_and_not_by_one_it_lacks(library):
    cafe = library.write(photo(0), "Café OLYMPIA", "Total 12.50")
    hotel = library.write(photo(7), "Hotel Paris")
    assert library.found('text:"cafe olympia"') == [cafe]
    assert library.found("text:olympia") == [cafe] and library.found("text:paris") == [hotel]
    assert library.found("text:total") == [cafe]  # its second line
    assert library.found('text:"olympia paris"') == []  # every word, in one photo's text
    assert library.found("text:zebra") == []
    assert all(not h.words for h in library.find("zebra").hits)  # a plain query no photo shows
    olympia = library.find("olympia")
    assert {h.image_id for h in olympia.hits if h.words} == {cafe}


def test_case_and_accents_are_folded(library):
    cafe = library.write(photo(1), "CAFÉ Crème Brûlée")
    for query in ("text:cafe", "text:CAFÉ", 'text:"creme brulee"', 'text:"CRÈME BRÛLÉE"', "text:Café"):
        assert library.found(query) == [cafe], query


def test_the_last_word_is_a_prefix_and_a_long_word_is_found_one_letter_off(library):
    exact = library.write(photo(2), "OLYMPIA Theatre")
    misread = library.write(photo(3), "0LYMPIA cinema")  # a zero for the O
    dropped = library.write(photo(8), "Restaurnt Bellevue")  # a letter missing
    short = library.write(photo(9), "cat cafe")
    assert library.found("text:olym") == [exact]  # the prefix "olym" is no word one letter off 0lympia
    assert library.found('text:"olympia thea"') == [exact]
    assert library.found('text:"olymp theatre"') == []  # only the last word is a prefix
    assert library.found("text:olympia") == [exact, misread]  # found as read first
    assert library.found("text:restaurant") == [dropped] and library.found('text:"restaurant bellevue"') == [dropped]
    assert library.found("text:cab") == [] and library.found("text:cafe") == [short]  # short words: as typed
    assert library.found('text:"cat cafe"') == [short]


def test_a_plain_query_raises_the_photos_showing_its_words_and_they_match(library):
    plain = library.find("blue thing")
    last = plain.hits[-1].image_id
    assert not plain.hits[-1].match
    shown = library.write(library_photo(library, last), "BLUE THING sale")
    raised = library.find("blue thing")
    hit = next(h for h in raised.hits if h.image_id == shown)
    assert hit.match and hit.words == ("BLUE", "THING")
    cutoff, top, median = raised.cutoff.value, raised.cutoff.top, raised.cutoff.median
    floor = cutoff if cutoff is not None else top
    before = next(h.score for h in plain.hits if h.image_id == shown)
    assert hit.score == pytest.approx(max(before, floor) + 0.95 * (top - median), abs=1e-4)  # docs/web.md
    ranks = [h.image_id for h in raised.hits]
    assert all(ranks.index(shown) < ranks.index(h.image_id) for h in raised.hits if not h.match)


def library_photo(library: Library, image_id: int) -> str:
    return next(name for name, i in library.ids.items() if i == image_id)


def test_minus_text_removes_and_plus_requires(library):
    blue = library.find("blue thing").hits
    matching = [h.image_id for h in blue if h.match]
    other = [h.image_id for h in blue if not h.match]
    assert matching and other, "the test needs photos on both sides of the cutoff"
    yes = library.write(library_photo(library, matching[0]), "Olympia")
    no = library.write(library_photo(library, other[0]), "Olympia", "Paris")
    without = library.found("blue thing -text:olympia")
    assert yes not in without and no not in without and len(without) == len(blue) - 2
    both = library.find("blue thing + text:olympia")
    assert {h.image_id for h in both.hits if h.match} == {yes} and no in [h.image_id for h in both.hits]
    assert [p["words"] for p in both.parts] == [False, True] and both.parts[1]["cutoff"] is None
    assert library.found("text:olympia + text:paris") == [no]
    assert library.found("text:olympia -text:paris") == [yes]
    assert yes not in library.found("text:olympia -blue thing")  # it matches "blue thing"


def test_filters_combine_with_text_parts(library):
    from indexer.search.filters import Filters

    in_a = library.write(photo(0), "Olympia")
    in_b = library.write(photo(N - 1), "Olympia")
    assert set(library.found("text:olympia")) == {in_a, in_b}
    folder = str(Path(library_path(library, in_a)).parent)
    assert library.found("text:olympia", filters=Filters.parse(folder)) == [in_a]
    assert in_b not in library.found("blue thing + text:olympia", filters=Filters.parse(folder))
    plain = library.find("olympia", filters=Filters.parse(folder))
    assert [h.image_id for h in plain.hits if h.words] == [in_a]


def library_path(library: Library, image_id: int) -> str:
    with library.db.session() as s:
        return s.scalar(select(Image.path).where(Image.id == image_id))


def test_results_show_the_words_in_the_api_the_cli_and_the_openapi_document(library):
    from openapi_schema_validator import OAS30Validator, validate

    cafe = library.write(photo(4), "Café OLYMPIA — menu", "open daily")
    out = json.loads(library.cli("search", 'text:"cafe olym"', "--json").stdout)
    assert [(h["image_id"], h["words"], h["match"]) for h in out["results"]] == [(cafe, ["Café", "OLYMPIA"], True)]
    line = library.cli("search", 'text:"cafe olym"').stdout.splitlines()[0]
    assert "Café OLYMPIA" in line and line.split()[1] == "*"
    client = library.client()
    body = client.get("/api/search", query_string={"q": "text:olympia -text:closed"}).get_json()
    assert [(h["image_id"], h["words"]) for h in body["results"]] == [(cafe, ["OLYMPIA"])]
    assert [p["words"] for p in body["parts"]] == [True, True] and body["cutoff"] is None
    doc = client.get("/api/openapi.json").get_json()
    validate(body, {"$ref": "#/components/schemas/SearchResults", "components": doc["components"]},
             cls=OAS30Validator)
    plain = client.get("/api/search", query_string={"q": "olympia"}).get_json()
    validate(plain, {"$ref": "#/components/schemas/SearchResults", "components": doc["components"]},
             cls=OAS30Validator)
    assert [h["words"] for h in plain["results"] if h["image_id"] == cafe] == [["OLYMPIA"]]
    page = client.get("/", query_string={"q": "text:olympia"}).get_data(as_text=True)
    assert 'class="words"' in page and "&ldquo;OLYMPIA&rdquo;" in page and "the words &ldquo;olympia&rdquo;" in page


def test_the_full_text_index_follows_photo_text(library):
    cafe = library.write(photo(5), "Olympia")
    assert library.found("text:olympia") == [cafe]
    with library.db.session() as s:
        s.execute(update(PhotoText).where(PhotoText.image_id == cafe).values(text="Bellevue", folded="bellevue"))
    assert library.found("text:olympia") == [] and library.found("text:bellevue") == [cafe]
    with library.db.session() as s:
        s.execute(delete(PhotoText).where(PhotoText.image_id == cafe))
    assert library.found("text:bellevue") == []
    again = library.write(photo(6), "Bellevue")
    with library.db.session() as s:  # the photo goes: its lines with it (cascade), and from the index
        s.execute(delete(Image).where(Image.id == again))
        assert s.scalar(select(PhotoText.id).where(PhotoText.image_id == again)) is None
    assert library.found("text:bellevue") == []


def test_a_text_part_costs_the_same_statements_for_one_photo_or_all(library):
    searcher = library.searcher()
    library.write(photo(0), "Olympia Bellevue")
    searcher.find("text:olympia -text:closed", k=5)  # warm: the model, the served version

    def statements(query: str) -> int:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731 - before_cursor_execute's statement
        event.listen(library.db.engine, "before_cursor_execute", listener)
        try:
            searcher.find(query, k=5)
        finally:
            event.remove(library.db.engine, "before_cursor_execute", listener)
        return sum("photo_text" in sql for sql in seen)

    one = statements("text:olympia -text:closed")
    for n in range(1, N):
        library.write(photo(n), "Olympia Bellevue")
    assert statements("text:olympia -text:closed") == one <= 5  # expand + find for each part, the page's words


@pytest.mark.parametrize("home_env", ["postgresql"], indirect=True)
def test_postgresql_without_pg_trgm_finds_words_as_typed_and_by_prefix(library):
    exact = library.write(photo(2), "OLYMPIA Theatre")
    library.write(photo(3), "0LYMPIA cinema")
    with library.db.session() as s:
        s.execute(text("DROP INDEX ix_photo_text_fts_trigrams"))
    word_search._trigrams.pop(library.db.url, None)
    assert library.found("text:olympia") == [exact] and library.found("text:olym") == [exact]


def test_a_postgresql_role_that_may_not_create_pg_trgm_migrates_and_searches_as_typed(postgres_url, synthetic_photos,
                                                                                          tmp_path):
    """The database's owner may create pg_trgm (a trusted extension); a role without CREATE on the
    database may not: the migration goes on without the trigram index, search without typos."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from .databases import forget_database

    role = f"tagscope_plain_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
        conn.execute(text(f'GRANT USAGE, CREATE ON SCHEMA public TO "{role}"'))
    url = make_url(postgres_url).set(username=role, password=None).render_as_string(hide_password=False)
    try:
        env = {"TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_DATABASE_URL": url}
        run_cli("db", "upgrade", home=tmp_path / "home", **env)
        with admin.connect() as conn:
            assert not conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()
            assert {r[0] for r in conn.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'photo_text'"))
                    } >= {"ix_photo_text_fts"}
        library = tagged(tmp_path / "home", env, url, synthetic_photos, tmp_path)
        exact = library.write(photo(2), "OLYMPIA Theatre")
        library.write(photo(3), "0LYMPIA cinema")
        assert library.found("text:olympia") == [exact] and library.found("text:olym") == [exact]
    finally:
        forget_database(url)
        with admin.connect() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        admin.dispose()


def sign(path: Path, word: str) -> Path:
    """A JPEG of a plain wall with ``word`` painted on a light sign (DejaVu Sans Bold, 56 px)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont

    image = PILImage.new("RGB", (640, 360), (120, 140, 150))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 130, 80 + 44 * len(word), 230), fill=(240, 238, 230))
    draw.text((60, 150), word, font=ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 56),
              fill=(20, 20, 25))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=90)
    return path


def test_a_photo_with_a_word_read_by_ocr_is_found_by_it_and_not_by_a_word_it_lacks(home_env, tmp_path):
    home, env, url = home_env
    olympia, bakery = sign(tmp_path / "photos" / "olympia.jpg", "OLYMPIA"), sign(tmp_path / "photos" / "bakery.jpg",
                                                                                 "BAKERY")
    run_cli("tag", str(tmp_path / "photos"), "--ocr", home=home, **env)

    def paths(query: str) -> list[str]:
        out = json.loads(run_cli("search", query, "--json", home=home, **env).stdout)
        return [Path(h["path"]).name for h in out["results"] if h["match"] and h["words"]]

    assert paths("text:olympia") == [olympia.name] and paths("text:bakery") == [bakery.name]
    assert paths("text:olymp") == [olympia.name] and paths("olympia") == [olympia.name]
    assert paths("text:museum") == [] and paths("text:olympia -text:bakery") == [olympia.name]

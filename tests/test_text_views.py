"""The words read in photos where people see them (issue 33, point 2): ``tagscope show`` (a text
section, and ``text`` / ``text_read`` in --json), the image API as its OpenAPI schema says, the
image page (each line's box outlined over the photo by an SVG in the upright photo's pixels, the
lines listed, the words of the search it was reached from marked), CSV and JSONL (a ``text``
column / field) and XMP (``tagscope:Text``, read back by exiftool: merged with what others wrote,
replaced by the next export). On SQLite and PostgreSQL; a browser checks that the outlines sit on
the text of a photo turned by its EXIF orientation and shown as a thumbnail.

The collection is tagged by the real CLI; what OCR read is written here as ``photo_text`` and
``text_reads`` rows (the reading itself is tests/test_ocr_tagging.py's)."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PILImage
from PIL import ImageDraw
from sqlalchemy import delete, insert, select, update

from core.schema import FAILED_READ, READ, Image, PhotoText, TextRead
from core.settings import load_settings
from core.words import fold
from migrations import get_database
from tagger.exchange import xmp

from .commands import run_cli
from .exiftool import need_exiftool, read_back, read_fields, write_with_exiftool
from .photos import photos_subset
from .test_browser import browser, loaded, shots  # noqa: F401  (fixtures)

UPRIGHT = (800, 1200)  # the sign photo as people see it: stored 1200 x 800, EXIF orientation 6 turns it
SIGN_BOX = [[100, 200], [500, 200], [500, 320], [100, 320]]  # the dark sign, in upright pixels
LINES = [  # (text, confidence, language, box)
    ("CAFÉ DE FLORE", 0.97, "fr", SIGN_BOX),
    ("Open 7 days, 8-23", 0.88, None, [[120, 400], [420, 400], [420, 450], [120, 450]]),
]
FAILURE = "the OCR engine could not run on this photo: out of memory"


def sign_photo(path: Path) -> None:
    """A JPEG stored on its side (1200 x 800) with EXIF orientation 6: upright it is 800 x 1200,
    with a dark sign at SIGN_BOX on a light background."""
    upright = PILImage.new("RGB", UPRIGHT, (235, 235, 225))
    draw = ImageDraw.Draw(upright)
    draw.rectangle([*SIGN_BOX[0], *SIGN_BOX[2]], fill=(20, 20, 30))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    upright.transpose(PILImage.Transpose.ROTATE_90).save(path, quality=90, exif=exif)


@dataclass
class Library:
    home: Path
    env: dict
    db: object
    photos: Path
    ids: dict[str, int]  # file name -> image id

    def cli(self, *args: str):
        return run_cli(*args, home=self.home, **self.env)

    def show(self, name: str) -> dict:
        return json.loads(self.cli("show", str(self.ids[name]), "--json").stdout)

    def client(self):
        from web import create_app

        return create_app(load_settings(environ=self.env, home=str(self.home)), {"TESTING": True}).test_client()

    def page(self, name: str, **args: str) -> str:
        resp = self.client().get(f"/image/{self.ids[name]}", query_string=args)
        assert resp.status_code == 200
        return resp.get_data(as_text=True)

    def read(self, name: str, lines: list[tuple], state: str = READ, error: str | None = None) -> None:
        """What OCR read in the photo, as the pipeline stores it (in shuffled order: lines are
        shown by ``line``); an empty list is a reading that found nothing."""
        image_id = self.ids[name]
        with self.db.session() as s:
            s.execute(delete(PhotoText).where(PhotoText.image_id == image_id))
            s.execute(delete(TextRead).where(TextRead.image_id == image_id))
            digest = s.scalar(select(Image.content_hash).where(Image.id == image_id))
            rows = [{"image_id": image_id, "line": n, "text": t, "folded": fold(t), "confidence": c, "language": lang,
                     "box": box, "frame_ms": None} for n, (t, c, lang, box) in enumerate(lines)]
            for row in reversed(rows):
                s.execute(insert(PhotoText), [row])
            s.execute(insert(TextRead), [{"image_id": image_id, "state": state, "error": error, "lines": len(rows),
                                          "engine": "rapidocr test", "content_hash": digest}])

    def forget(self, name: str) -> None:
        """No reading at all (OCR off)."""
        with self.db.session() as s:
            s.execute(delete(PhotoText).where(PhotoText.image_id == self.ids[name]))
            s.execute(delete(TextRead).where(TextRead.image_id == self.ids[name]))


def tagged_library(home: Path, env: dict, url: str, photos: Path) -> Library:
    """The photos tagged by the real CLI; the sign read (two lines), the first synthetic photo's
    reading failed, the second's found nothing, the third never read."""
    sign_photo(photos / "sign.jpg")
    run_cli("tag", str(photos), home=home, **env)
    db = get_database(url)
    with db.session() as s:
        ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.path))}
    lib = Library(home, env, db, photos, ids)
    lib.read("sign.jpg", LINES)
    synthetic = sorted(n for n in ids if n != "sign.jpg")
    lib.read(synthetic[0], [], FAILED_READ, FAILURE)
    lib.read(synthetic[1], [])
    return lib


@pytest.fixture
def library(home_env, synthetic_photos, tmp_path) -> Library:
    home, env, url = home_env
    return tagged_library(home, env, url, photos_subset(synthetic_photos, tmp_path / "photos", 3))


def synthetic(lib: Library, n: int) -> str:
    return sorted(name for name in lib.ids if name != "sign.jpg")[n]


def expected_lines() -> list[dict]:
    return [{"text": t, "confidence": c, "language": lang, "box": [[float(x), float(y)] for x, y in box],
             "frame_ms": None} for t, c, lang, box in LINES]


def test_show_and_the_api_carry_each_photo_s_text_in_line_order(library):
    from openapi_schema_validator import OAS30Validator, validate

    record = library.show("sign.jpg")
    assert (record["width"], record["height"]) == UPRIGHT  # the boxes' frame: the upright photo
    assert record["text"] == expected_lines()
    assert {k: record["text_read"][k] for k in ("state", "error", "lines", "engine", "current")} == \
        {"state": "read", "error": None, "lines": 2, "engine": "rapidocr test", "current": True}
    printed = library.cli("show", str(library.ids["sign.jpg"])).stdout.splitlines()
    at = printed.index("  text  (confidence, language, line)")
    assert printed[at + 1:at + 3] == ["    0.97  fr    CAFÉ DE FLORE", "    0.88  -     Open 7 days, 8-23"]
    failed, empty, unread = (library.show(synthetic(library, n)) for n in range(3))
    assert failed["text"] == [] and failed["text_read"]["state"] == "failed" and failed["text_read"]["error"] == FAILURE
    assert f"  text     not read: {FAILURE}" in library.cli("show", str(failed["image_id"])).stdout.splitlines()
    assert empty["text"] == [] and empty["text_read"]["lines"] == 0
    assert "  text     none found" in library.cli("show", str(empty["image_id"])).stdout.splitlines()
    assert unread["text"] == [] and unread["text_read"] is None
    assert not any(line.lstrip().startswith("text") for line in library.cli("show", str(unread["image_id"])).stdout
                   .splitlines())
    client = library.client()
    doc = client.get("/api/openapi.json").get_json()
    for shown in (record, failed, empty, unread):
        api = client.get(f"/api/images/{shown['image_id']}").get_json()
        assert api["text"] == shown["text"] and api["text_read"] == shown["text_read"]
        validate(api, {"$ref": "#/components/schemas/Image", "components": doc["components"]}, cls=OAS30Validator)
    with library.db.session() as s:  # the file changed since it was read: said so until it is read again
        s.execute(update(Image).where(Image.id == library.ids["sign.jpg"]).values(content_hash="0" * 64))
    assert library.show("sign.jpg")["text_read"]["current"] is False
    assert "read again on the next tagging run" in library.cli("show", str(library.ids["sign.jpg"])).stdout
    assert 'id="text-stale"' in library.page("sign.jpg")


def polygons(page: str) -> list[tuple[str, str, str]]:
    """(class, data-line, points) of each box over the photo."""
    return re.findall(r'<polygon class="([^"]*)" data-line="(\d+)" points="([^"]*)">', page)


def marked(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r"<mark>([^<]*)</mark>", page)]


def test_the_page_outlines_each_line_over_the_photo_and_marks_the_searched_words(library):
    page = library.page("sign.jpg")
    assert re.search(r'<svg class="text-boxes" id="text-boxes" viewBox="0 0 800 1200" preserveAspectRatio="none"',
                     page)
    assert polygons(page) == [("text-box", "0", "100,200 500,200 500,320 100,320"),
                              ("text-box", "1", "120,400 420,400 420,450 120,450")]
    items = re.findall(r'<li data-line="(\d+)"[^>]*>(.*?)</li>', page, re.S)
    assert [(n, html.unescape(re.sub(r"<[^>]+>", "", text))) for n, text in items] == \
        [("0", "CAFÉ DE FLORE"), ("1", "Open 7 days, 8-23")]
    assert marked(page) == [] and 'id="text-found"' not in page
    found = library.page("sign.jpg", q="cafe")  # folded: accents and case
    assert marked(found) == ["CAFÉ"] and [c for c, _, _ in polygons(found)] == ["text-box found", "text-box"]
    assert "found in 1 line" in found
    assert marked(library.page("sign.jpg", q="flore open")) == ["FLORE", "Open"]
    assert marked(library.page("sign.jpg", q="days + flor")) == ["FLORE", "days,"]  # a word's start; each part
    assert marked(library.page("sign.jpg", q="dayz")) == []  # 4 letters asked: no letter off
    assert marked(library.page("sign.jpg", q="fl0re")) == ["FLORE"]  # 5 letters: one off, as OCR misreads
    assert marked(library.page("sign.jpg", q="cafe bicycle")) == []  # not all of a part's words are there
    assert marked(library.page("sign.jpg", q="dog -cafe")) == []  # what a query excludes is not marked
    assert marked(library.page("sign.jpg", q='text:"de flore"')) == ["DE", "FLORE"]
    failed = library.page(synthetic(library, 0))
    assert 'id="text-error"' in failed and html.escape(FAILURE) in failed and "<polygon" not in failed
    empty = library.page(synthetic(library, 1))
    assert 'id="no-text"' in empty and 'id="text-boxes"' not in empty
    assert 'id="photo-text"' not in library.page(synthetic(library, 2))


def table_rows(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return {Path(row["path"]).name: row for row in csv.DictReader(fh)}


def test_csv_and_jsonl_carry_each_photo_s_lines(library, tmp_path):
    library.cli("export", "csv", str(tmp_path / "tags.csv"), str(library.photos))
    library.cli("export", "jsonl", str(tmp_path / "tags.jsonl"), str(library.photos))
    table = table_rows(tmp_path / "tags.csv")
    lines = {Path(row["file"]).name: row for row in map(json.loads, (tmp_path / "tags.jsonl").read_text()
                                                       .splitlines())}
    assert set(table) == set(lines) == set(library.ids)
    assert table["sign.jpg"]["text"] == lines["sign.jpg"]["text"] == "CAFÉ DE FLORE\nOpen 7 days, 8-23"
    for n in range(3):
        name = synthetic(library, n)
        assert table[name]["text"] == lines[name]["text"] == ""
        assert table[name]["tags"] == ";".join(lines[name]["labels"])  # the tags' columns as before


def test_xmp_carries_the_text_merged_with_other_fields_and_replaced_by_the_next_export(library):
    need_exiftool()
    sidecar = xmp.sidecar_path(library.photos / "sign.jpg")
    library.cli("export", "xmp", str(library.photos))
    first = read_fields(sidecar, "XMP-tagscope:Text", "XMP-lr:HierarchicalSubject")
    assert first["Text"] == [t for t, *_ in LINES]
    write_with_exiftool(sidecar, "-XMP-dc:Subject+=Anna", "-XMP-dc:Description=Paris, May")  # another tool
    library.read("sign.jpg", [("Ouvert tous les jours", 0.9, "fr", SIGN_BOX)])
    library.cli("export", "xmp", str(library.photos))
    again = read_fields(sidecar, "XMP-tagscope:Text", "XMP-dc:Description", "XMP-lr:HierarchicalSubject")
    assert again["Text"] == ["Ouvert tous les jours"]  # an rdf:Seq: a list, even of one line
    assert again["Description"] == "Paris, May" and "Anna" in read_back(sidecar)["Subject"]
    assert again.get("HierarchicalSubject") == first.get("HierarchicalSubject")  # the keywords as they were
    library.forget("sign.jpg")  # not read (OCR off): what the sidecar says stays
    library.cli("export", "xmp", str(library.photos))
    assert read_fields(sidecar, "XMP-tagscope:Text")["Text"] == ["Ouvert tous les jours"]
    library.read("sign.jpg", [])  # read again, and nothing found: the field goes
    library.cli("export", "xmp", str(library.photos))
    after = read_fields(sidecar, "XMP-tagscope:Text", "XMP-dc:Description")
    assert "Text" not in after and after["Description"] == "Paris, May" and "Anna" in read_back(sidecar)["Subject"]
    for n in range(3):  # failed, nothing found, never read: no text written
        assert "Text" not in read_fields(xmp.sidecar_path(library.photos / synthetic(library, n)), "XMP-tagscope:Text")


@pytest.fixture(scope="module")
def text_server(tmp_path_factory, synthetic_photos):
    from .servers import serving

    root = tmp_path_factory.mktemp("text-views")
    env = {"TAGSCOPE_MODEL": "synthetic"}
    home = root / "home"
    lib = tagged_library(home, env, f"sqlite:///{home.resolve()}/tagscope.sqlite",
                         photos_subset(synthetic_photos, root / "photos", 3))
    for url in serving(home):
        yield url, lib


def on_screen(box: list[list[int]], img: dict) -> tuple[float, float, float, float]:
    """Where an upright-pixel box should be on the page: (left, top, right, bottom)."""
    sx, sy = img["width"] / UPRIGHT[0], img["height"] / UPRIGHT[1]
    return (img["x"] + box[0][0] * sx, img["y"] + box[0][1] * sy, img["x"] + box[2][0] * sx, img["y"] + box[2][1] * sy)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 360])
def test_the_outlines_sit_on_the_text_of_the_photo_as_the_browser_shows_it(text_server, browser, shots,  # noqa: F811
                                                                         width):
    url, lib = text_server
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(f"{url}/image/{lib.ids['sign.jpg']}?q=cafe")
    loaded(page, "#photo-frame img")
    natural = page.eval_on_selector("#photo-frame img", "i => [i.naturalWidth, i.naturalHeight]")
    assert natural[0] < UPRIGHT[0] and natural[1] > natural[0]  # a thumbnail, upright
    img = page.locator("#photo-frame img").bounding_box()
    assert abs(img["width"] / img["height"] - UPRIGHT[0] / UPRIGHT[1]) < 0.01
    svg = page.locator("#text-boxes").bounding_box()
    assert max(abs(svg[k] - img[k]) for k in ("x", "y", "width", "height")) <= 1, (svg, img)
    for n, (_, _, _, box) in enumerate(LINES):  # the outline's box holds its stroke (a few pixels each side)
        drawn = page.locator(f'#text-boxes polygon[data-line="{n}"]').bounding_box()
        left, top, right, bottom = on_screen(box, img)
        centre = (drawn["x"] + drawn["width"] / 2, drawn["y"] + drawn["height"] / 2)
        assert abs(centre[0] - (left + right) / 2) <= 1.5 and abs(centre[1] - (top + bottom) / 2) <= 1.5, (n, drawn)
        assert 0 <= drawn["width"] - (right - left) <= 10 and 0 <= drawn["height"] - (bottom - top) <= 10, (n, drawn)
    # the photo under the first outline is the dark sign; under the second, the light background
    shot = page.screenshot(clip=img)
    pixels = PILImage.open(io.BytesIO(shot)).convert("L")
    scale = pixels.width / UPRIGHT[0]

    def brightness(box: list[list[int]]) -> float:
        return pixels.getpixel((int((box[0][0] + box[2][0]) / 2 * scale), int((box[0][1] + box[2][1]) / 2 * scale)))

    assert brightness(LINES[0][3]) < 90 < 160 < brightness(LINES[1][3])
    assert page.locator("#text-lines li.found mark").inner_text() == "CAFÉ"
    assert "found" in page.locator('#text-boxes polygon[data-line="0"]').get_attribute("class")
    page.hover('#text-lines li[data-line="1"]')
    assert "pointed" in page.locator('#text-boxes polygon[data-line="1"]').get_attribute("class")
    page.screenshot(path=str(shots / f"text-boxes-{width}.png"), full_page=True)
    page.close()

"""Export tags to XMP sidecars, CSV and JSONL, and import keywords back, checked with an independent
reader (Debian's exiftool) and digiKam/darktable's field conventions."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from core import feedback
from core.settings import load_settings
from migrations import get_database
from mkt.annotations import read_annotations
from tagger.exchange import xmp
from tests.commands import run_cli
from tests.exiftool import need_exiftool, read_back, write_with_exiftool
from tests.photos import read_labels_jsonl


@pytest.fixture(scope="module", autouse=True)
def exiftool():
    need_exiftool()


@pytest.fixture(scope="module")
def library(tmp_path_factory, synthetic_photos) -> tuple[Path, Path]:
    """30 photos (two of them JPEGs carrying IPTC / embedded XMP keywords), tagged, with verdicts,
    and one sidecar another tool wrote before."""
    root = tmp_path_factory.mktemp("library")
    photos = root / "photos"
    photos.mkdir()
    for name in sorted(read_labels_jsonl(synthetic_photos))[:28]:
        shutil.copyfile(synthetic_photos / name, photos / name)
    for i, name in enumerate(sorted(read_labels_jsonl(synthetic_photos))[28:30]):
        Image.open(synthetic_photos / name).convert("RGB").save(photos / f"camera{i}.jpg", quality=95)
    write_with_exiftool(photos / "camera0.jpg", "-IPTC:Keywords=sunset", "-IPTC:Keywords=Beach")
    write_with_exiftool(photos / "camera1.jpg", "-XMP-dc:Subject=Grandma")
    (photos / "000002.png.xmp").write_text(OTHER_TOOL)
    run_cli("tag", str(photos), "--model", "synthetic", home=root / "home")
    return photos, root / "home"


OTHER_TOOL = """<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:digiKam="http://www.digikam.org/ns/1.0/" xmlns:lr="http://ns.adobe.com/lightroom/1.0/" xmp:Rating="4">
   <dc:subject><rdf:Bag><rdf:li>Holidays</rdf:li><rdf:li>Anna</rdf:li></rdf:Bag></dc:subject>
   <digiKam:TagsList><rdf:Seq><rdf:li>People/Anna</rdf:li><rdf:li>Holidays</rdf:li></rdf:Seq></digiKam:TagsList>
   <lr:hierarchicalSubject><rdf:Bag><rdf:li>People|Anna</rdf:li><rdf:li>Holidays</rdf:li></rdf:Bag></lr:hierarchicalSubject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def ids_by_name(home: Path) -> dict[str, int]:
    rows = json.loads(run_cli("search", "thing", "-k", "1000", "--json", home=home).stdout)["results"]
    return {Path(r["path"]).name: r["image_id"] for r in rows}


def test_sidecars_carry_tags_as_people_see_them(library):
    photos, home = library
    ids = ids_by_name(home)
    top = json.loads(run_cli("show", str(ids["000001.png"]), "--json", home=home).stdout)["tags"][0]["label"]
    run_cli("feedback", "confirm", str(ids["000000.png"]), "my cat", home=home)
    run_cli("feedback", "reject", str(ids["000001.png"]), top, home=home)
    summary = json.loads(run_cli("export", "xmp", str(photos), "--top", "3", home=home).stdout)
    assert summary == {"sidecars": 30, "failed": 0}
    first = read_back(photos / "000000.png.xmp")
    assert first["Subject"][0] == "my cat" and len(first["Subject"]) == 4  # confirmed + the model's best 3
    assert first["HierarchicalSubject"] == [f"Tagscope|{k}" for k in first["Subject"]]  # Lightroom/darktable: "|"
    assert first["TagsList"] == [f"Tagscope/{k}" for k in first["Subject"]]  # digiKam: "/"
    assert top not in read_back(photos / "000001.png.xmp")["Subject"]


def test_other_tools_keywords_stay_and_ours_are_replaced(library):
    photos, home = library
    run_cli("export", "xmp", str(photos), "--top", "3", home=home)
    run_cli("export", "xmp", str(photos / "000002.png"), "--top", "1", home=home)
    merged = read_back(photos / "000002.png.xmp")
    assert merged["Subject"][:2] == ["Holidays", "Anna"] and len(merged["Subject"]) == 3
    assert merged["TagsList"][:2] == ["People/Anna", "Holidays"] and merged["TagsList"][2].startswith("Tagscope/")
    assert merged["HierarchicalSubject"][:2] == ["People|Anna", "Holidays"] and merged["Rating"] == 4


def test_adobe_style_names_and_a_broken_sidecar_does_not_stop_the_rest(library, tmp_path):
    photos, home = library
    (photos / "000005.png.xmp").write_text("<x:xmpmeta this is not xml")
    summary = json.loads(run_cli("export", "xmp", str(photos), "--top", "2", home=home).stdout)
    assert summary == {"sidecars": 29, "failed": 1}
    assert (photos / "000005.png.xmp").read_text() == "<x:xmpmeta this is not xml"  # never clobbered
    (photos / "000005.png.xmp").unlink()
    run_cli("export", "xmp", str(photos / "000007.png"), "--style", "adobe", "--top", "2", home=home)
    assert read_back(photos / "000007.xmp")["Subject"]
    (photos / "000007.xmp").unlink()  # import reads both names: leave one sidecar per photo


@pytest.mark.slow
def test_round_trip_into_a_fresh_collection(library, tmp_path):
    photos, home = library
    run_cli("export", "xmp", str(photos), "--top", "3", home=home)
    fresh = tmp_path / "fresh"
    run_cli("tag", str(photos), "--model", "synthetic", home=fresh)
    summary = json.loads(run_cli("import", "xmp", str(photos), home=fresh).stdout)
    assert summary["photos"] == 30 and summary["unreadable"] == 0
    db = get_database(load_settings(environ={}, home=str(fresh)).db_url)
    for name, image_id in ids_by_name(fresh).items():
        imported = {label for label, v in feedback.for_image(db, image_id).items() if v == feedback.CONFIRM}
        written = set(read_back(xmp.sidecar_path(photos / name))["Subject"])
        extra = {"camera0.jpg": {"sunset", "Beach"}, "camera1.jpg": {"Grandma"}}.get(name, set())
        assert imported == written | extra, name  # sidecar keywords, IPTC and embedded XMP, all confirmed
    record = json.loads(run_cli("show", str(ids_by_name(fresh)["000000.png"]), "--json", home=fresh).stdout)
    confirmed = [t["label"] for t in record["tags"] if t["confirmed"]]
    assert "my cat" in confirmed and record["tags"][:len(confirmed)] == [t for t in record["tags"] if t["confirmed"]]


def test_import_never_overrides_a_persons_verdict(library, tmp_path):
    photos, home = library
    run_cli("export", "xmp", str(photos), "--top", "3", home=home)
    fresh = tmp_path / "fresh"
    run_cli("tag", str(photos), "--model", "synthetic", home=fresh)
    image_id = ids_by_name(fresh)["000002.png"]
    run_cli("feedback", "reject", str(image_id), "Anna", home=fresh)
    run_cli("import", "xmp", str(photos / "000002.png"), home=fresh)
    db = get_database(load_settings(environ={}, home=str(fresh)).db_url)
    assert feedback.for_image(db, image_id)["Anna"] == feedback.REJECT


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_csv_and_jsonl_exports_are_annotation_files(library, tmp_path, fmt):
    """Their labels are the matches (training data): by default all of them; with --top 2 those of
    the photo's two best tags (and confirmed ones), the others beside them."""
    photos, home = library
    out, default = tmp_path / f"tags.{fmt}", tmp_path / f"default.{fmt}"
    assert json.loads(run_cli("export", fmt, str(out), str(photos), "--top", "2", home=home).stdout)["photos"] == 30
    run_cli("export", fmt, str(default), str(photos), home=home)
    matches = {Path(e.file).name: e.labels for e in read_annotations(default)}
    examples = {Path(e.file).name: e for e in read_annotations(out)}
    assert len(examples) == 30 and "my cat" in examples["000000.png"].labels and "my cat" in matches["000000.png"]
    if fmt == "jsonl":
        rows = {Path(row["file"]).name: row for row in map(json.loads, out.read_text().splitlines())}
        model = {name: [t for t in row["tags"] if not t["confirmed"]] for name, row in rows.items()}
        assert all(len(tags) == 2 and set(tags[0]) == {"label", "score", "confirmed", "match", "confidence"}
                   for tags in model.values())
        exported = {name: {t["label"] for t in row["tags"]} for name, row in rows.items()}
    else:
        with open(out, newline="", encoding="utf-8") as fh:
            rows = {Path(row["path"]).name: row for row in csv.DictReader(fh)}
        exported = {name: {t for t in row["tags"].split(";") + row["also"].split(";") if t}
                    for name, row in rows.items()}
        assert all(len(tags - {"my cat"}) == 2 for tags in exported.values())
    assert {n: e.labels for n, e in examples.items()} == {n: matches[n] & exported[n] for n in examples}
    assert sum(map(len, matches.values())) > sum(len(e.labels) for e in examples.values())  # --top 2 left some out

"""Words in photos while tagging (issue 33): with OCR on, ``tagscope tag`` reads the words in each
photo on the same decode pass and stores them with the batch (``photo_text``, a ``text_reads`` row
per photo, 0 lines included); off, nothing is written; a changed file is read again; a failure on
one photo is its one-line reason and the photo is still tagged; OCR turned on over a tagged
collection runs a text job that reads without embedding again, and resumes like any job; a video
is read in the frames tagging decodes; a missing ``rapidocr`` is named in one line. Real photos
with rendered words (DejaVu, 40-60 px high), the real engine, SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from sqlalchemy import select

from core.schema import FAILED_READ, READ, TAGGED, Embedding, Job, PhotoText, TextRead
from core.schema import Image as ImageRow
from migrations import get_database

from . import ROOT
from .commands import run_cli

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def word_photo(path: Path, word: str | None, size: int = 52, canvas: tuple[int, int] = (640, 480)) -> Path:
    """A JPEG of a textured wall with ``word`` written on it (None: the wall alone)."""
    image = Image.new("RGB", canvas, (214, 205, 190))
    draw = ImageDraw.Draw(image)
    for x in range(0, canvas[0], 40):  # brick joints: something for the detector to look at
        draw.line([(x, 0), (x + 20, canvas[1])], fill=(196, 186, 170), width=3)
    if word:
        font = ImageFont.truetype(str(FONTS / "DejaVuSans-Bold.ttf"), size)
        draw.rectangle((50, 180, 60 + int(size * 0.75 * len(word)), 200 + int(size * 1.3)), fill=(245, 242, 235))
        draw.text((60, 190), word, font=font, fill=(25, 25, 30))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, quality=92)
    return path


def text_by_file(url: str) -> dict[str, list[str]]:
    """File name -> its folded lines, in order."""
    with get_database(url).session() as s:
        rows = s.execute(select(ImageRow.path, PhotoText.folded).join(PhotoText, PhotoText.image_id == ImageRow.id)
                         .order_by(ImageRow.path, PhotoText.line)).all()
    out: dict[str, list[str]] = {}
    for path, folded in rows:
        out.setdefault(Path(path).name, []).append(folded)
    return out


def reads_by_file(url: str) -> dict[str, tuple]:
    """File name -> (state, lines, error, read for the file's current content, engine)."""
    with get_database(url).session() as s:
        rows = s.execute(select(ImageRow.path, ImageRow.content_hash, TextRead)
                         .join(TextRead, TextRead.image_id == ImageRow.id)).all()
    return {Path(path).name: (r.state, r.lines, r.error, r.content_hash == digest, r.engine)
            for path, digest, r in rows}


def embeddings(url: str) -> dict[int, tuple[int, bytes]]:
    with get_database(url).session() as s:
        return {e.image_id: (e.model_version_id, e.vector) for e in s.scalars(select(Embedding))}


def job_kinds(url: str) -> list[tuple[str, str, int, int]]:
    with get_database(url).session() as s:
        return [(j.kind, j.state, j.done, j.failed) for j in s.scalars(select(Job).order_by(Job.id))]


def test_tagging_reads_the_words_and_nothing_without_ocr_then_a_text_job_reads_the_rest(home_env, tmp_path):
    home, env, url = home_env
    earlier, later = tmp_path / "earlier", tmp_path / "later"
    word_photo(earlier / "sign.jpg", "MUSEUM")
    word_photo(earlier / "wall.jpg", None)
    word_photo(later / "shop.jpg", "BAKERY")
    word_photo(later / "blank.jpg", None)

    run_cli("tag", str(earlier), "--no-ocr", home=home, **env)
    assert text_by_file(url) == {} and reads_by_file(url) == {}  # OCR off: nothing written

    run_cli("tag", str(later), home=home, **{**env, "TAGSCOPE_OCR": "auto"})  # the default: read on the tagging pass
    assert text_by_file(url) == {"shop.jpg": ["bakery"]}
    reads = reads_by_file(url)
    assert set(reads) == {"shop.jpg", "blank.jpg"}  # the earlier folder was not asked for
    assert reads["shop.jpg"][:4] == (READ, 1, None, True) and reads["shop.jpg"][4].startswith("rapidocr ")
    assert reads["blank.jpg"][:4] == (READ, 0, None, True)  # read, nothing found
    with get_database(url).session() as s:
        line = s.scalars(select(PhotoText)).one()
    xs, ys = [x for x, _ in line.box], [y for _, y in line.box]
    assert 40 <= min(xs) < max(xs) <= 640 and 170 <= min(ys) < max(ys) <= 280, line.box  # the sign's pixels
    assert line.text == "BAKERY" and line.confidence > 0.9 and line.frame_ms is None
    assert [k for k, *_ in job_kinds(url)] == ["tag", "tag"]  # nothing tagged before was left unread

    before = embeddings(url)
    out = run_cli("tag", str(earlier), "--ocr", home=home, **env)  # OCR turned on over a tagged folder
    assert "read the text of 2 photos tagged before (0 failed)" in out.stdout, out.stdout
    assert text_by_file(url) == {"shop.jpg": ["bakery"], "sign.jpg": ["museum"]}
    assert reads_by_file(url)["wall.jpg"][:4] == (READ, 0, None, True)
    assert embeddings(url) == before  # read, not embedded again
    assert job_kinds(url)[-2:] == [("tag", "done", 0, 0), ("text", "done", 2, 0)]

    run_cli("tag", str(earlier), str(later), "--ocr", home=home, **env)
    assert [k for k, *_ in job_kinds(url)].count("text") == 1  # nothing left to read: no text job


def test_a_changed_file_is_read_again_and_an_unchanged_one_is_not(home_env, tmp_path):
    home, env, url = home_env
    photo = word_photo(tmp_path / "photos" / "sign.jpg", "GARDEN")
    run_cli("tag", str(photo.parent), "--ocr", home=home, **env)
    assert text_by_file(url) == {"sign.jpg": ["garden"]}
    with get_database(url).session() as s:
        first = s.scalar(select(TextRead.read_at))
    run_cli("tag", str(photo.parent), "--ocr", "--retag", home=home, **env)  # tagged again, the same bytes
    with get_database(url).session() as s:
        assert s.scalar(select(TextRead.read_at)) == first  # their reading stays: not read again
    assert text_by_file(url) == {"sign.jpg": ["garden"]}
    word_photo(photo, "HARBOUR", size=48)
    os.utime(photo, (photo.stat().st_atime, photo.stat().st_mtime + 10))
    run_cli("tag", str(photo.parent), "--ocr", home=home, **env)
    assert text_by_file(url) == {"sign.jpg": ["harbour"]}
    assert reads_by_file(url)["sign.jpg"][:4] == (READ, 1, None, True)  # for the new content


def test_a_photo_whose_reading_fails_is_tagged_and_the_reason_kept(tmp_path, monkeypatch):
    """No real input makes RapidOCR fail once images are bounded (thin strips, specks, huge photos
    all read as "nothing found"), so this one test breaks the engine in this process, on the
    photo 333 px wide only."""
    from mkt.ocr import OcrEngine

    real = OcrEngine.read

    def read(self, image, scale=1.0):
        if image.shape[1] == 333:
            raise RuntimeError("ONNXRuntimeError : 6 : RUNTIME_EXCEPTION :\nNon-zero status code")
        return real(self, image, scale)

    monkeypatch.setattr(OcrEngine, "read", read)
    home, url = tmp_path / "home", f"sqlite:///{(tmp_path / 'home').resolve()}/tagscope.sqlite"
    word_photo(tmp_path / "photos" / "odd.jpg", "LIBRARY", canvas=(333, 480))
    word_photo(tmp_path / "photos" / "fine.jpg", "MARKET")
    out = run_cli("tag", str(tmp_path / "photos"), "--ocr", home=home, TAGSCOPE_MODEL="synthetic")
    assert "2 tagged, 0 failed" in out.stdout, out.stdout
    reads = reads_by_file(url)
    state, lines, error, current, _ = reads["odd.jpg"]
    assert (state, lines, current) == (FAILED_READ, 0, True)
    assert error == "OCR failed: RuntimeError: ONNXRuntimeError : 6 : RUNTIME_EXCEPTION : Non-zero status code"
    assert reads["fine.jpg"][:2] == (READ, 1) and text_by_file(url) == {"fine.jpg": ["market"]}
    with get_database(url).session() as s:
        assert set(s.scalars(select(ImageRow.status))) == {TAGGED}


def test_the_text_job_resumes_where_it_stopped(home_env, tmp_path):
    from core.settings import load_settings
    from tagger.jobs.control import cancel_job
    from tagger.jobs.rows import IN_PROCESS
    from tagger.jobs.start import start_text_job
    from tagger.jobs.tasks import run_task
    from tagger.params import JobParams

    home, env, url = home_env
    words = ["STATION", "THEATRE", "HOTEL", "RIVER", "SCHOOL", None]
    for n, word in enumerate(words):
        word_photo(tmp_path / "photos" / f"p{n}.jpg", word, size=44 + 3 * n)
    run_cli("tag", str(tmp_path / "photos"), "--no-ocr", home=home, **env)
    db = get_database(url)
    settings = load_settings({"TAGSCOPE_HOME": str(home), "TAGSCOPE_TASK_SIZE": "2", "TAGSCOPE_LOADER_WORKERS": "0",
                              **env})
    with db.session() as s:
        ids = list(s.scalars(select(ImageRow.id).order_by(ImageRow.id)))
    job_id, task_ids = start_text_job(settings, db, JobParams.from_settings(settings, ocr=True), ids, [], IN_PROCESS,
                                      [str(tmp_path / "photos")])
    assert len(task_ids) == 3
    run_task(settings, job_id, task_ids[0], role="cli")  # a third of the job, then the command stops
    cancel_job(db, job_id)
    assert set(reads_by_file(url)) == {"p0.jpg", "p1.jpg"}
    with db.session() as s:
        read_at = dict(s.execute(select(TextRead.image_id, TextRead.read_at)).all())

    out = run_cli("jobs", "resume", str(job_id), home=home, TAGSCOPE_TASK_SIZE="2", **env)
    assert out.stdout.startswith(f"job {job_id}  text  done  6 done, 0 failed of 6"), out.stdout
    assert text_by_file(url) == {f"p{n}.jpg": [w.lower()] for n, w in enumerate(words) if w}
    with db.session() as s:
        assert dict(s.execute(select(TextRead.image_id, TextRead.read_at)
                              .where(TextRead.image_id.in_(list(read_at)))).all()) == read_at  # not read twice


def test_a_queued_run_starts_a_text_job_for_the_tagged_photos_not_read_yet(tmp_path):
    """A schedule's run (or a job started from the web page) scans on a worker: its text job's
    tasks are sent with its own."""
    from core.settings import load_settings
    from tagger.jobs.rows import queue_scan_job
    from tagger.jobs.start import start_queued_job
    from tagger.jobs.tasks import run_task
    from tagger.params import JobParams

    home, url = tmp_path / "home", f"sqlite:///{(tmp_path / 'home').resolve()}/tagscope.sqlite"
    photos = word_photo(tmp_path / "photos" / "sign.jpg", "PHARMACY").parent
    run_cli("tag", str(photos), "--no-ocr", home=home, TAGSCOPE_MODEL="synthetic")
    settings = load_settings({"TAGSCOPE_HOME": str(home), "TAGSCOPE_LOADER_WORKERS": "0"})
    db = get_database(url)
    with db.session() as s:
        job_id = queue_scan_job(s, [str(photos)], "synthetic", JobParams.from_settings(settings, ocr=True), 60)
    sends = start_queued_job(settings, job_id)
    assert len(sends) == 1 and sends[0][0] != job_id  # nothing to tag, one photo to read
    run_task(settings, *sends[0], role="cli")
    assert text_by_file(url) == {"sign.jpg": ["pharmacy"]}
    assert job_kinds(url)[-2:] == [("scan", "done", 0, 0), ("text", "done", 1, 0)]


def test_a_video_is_read_in_the_frames_tagging_decodes(tmp_path):
    from bench.library import write_video

    home, url = tmp_path / "home", f"sqlite:///{(tmp_path / 'home').resolve()}/tagscope.sqlite"
    frames = [Image.open(word_photo(tmp_path / "f" / f"{n}.jpg", w)) for n, w in
              enumerate(["STATION", "STATION", "GARDEN"])]
    write_video(tmp_path / "videos" / "walk.mp4", frames, fps=5, seconds_each=2.0)
    run_cli("tag", str(tmp_path / "videos"), "--ocr", home=home, TAGSCOPE_MODEL="synthetic")
    with get_database(url).session() as s:
        lines = s.execute(select(PhotoText.folded, PhotoText.frame_ms).order_by(PhotoText.line)).all()
    assert [text for text, _ in lines] == ["station", "garden"]  # a line seen again in a later frame: once
    assert lines[0].frame_ms < 2000 <= 4000 <= lines[1].frame_ms < 6000, lines


@pytest.mark.slow
def test_a_missing_rapidocr_is_named_in_one_line(tmp_path):
    shadow = tmp_path / "shadow" / "rapidocr"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named rapidocr (test shadow)')\n")
    path = os.pathsep.join([str(shadow.parent), str(ROOT)])
    word_photo(tmp_path / "photos" / "sign.jpg", "MUSEUM")
    home = tmp_path / "home"
    env = {"TAGSCOPE_MODEL": "synthetic", "PYTHONPATH": path}
    asked = run_cli("tag", str(tmp_path / "photos"), "--ocr", home=home, process=True, check=False, **env)
    assert asked.returncode != 0 and "Traceback" not in asked.stderr, asked.stderr
    assert asked.stderr.strip().splitlines()[-1].startswith("error: reading text in photos (OCR) needs the "
                                                            "rapidocr package"), asked.stderr
    assert "pip install rapidocr" in asked.stderr.strip().splitlines()[-1]
    auto = run_cli("tag", str(tmp_path / "photos"), home=home, process=True, check=False, TAGSCOPE_OCR="auto", **env)
    assert auto.returncode == 0 and "1 tagged" in auto.stdout, auto.stderr
    warnings = [line for line in auto.stderr.splitlines() if "rapidocr" in line]
    assert len(warnings) == 1 and "pip install rapidocr" in warnings[0], auto.stderr
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    assert text_by_file(url) == {} and reads_by_file(url) == {}

"""A real ``tagscope worker`` process tags a collection exactly as the in-process run does."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.schema import Image, Label, ModelVersion, Tag
from indexer.vector_index import VectorIndex
from migrations import get_database
from tagger.jobs.task_names import TAG_TASK

from .commands import run_cli
from .servers import start_worker, stop_process
from .services import BROKERS
from .waiting import wait_until


def collection_snapshot(home: Path, db_url: str | None = None) -> dict:
    """{path: (status, {label: score}, vector)} for comparing two runs."""
    db = get_database(db_url or f"sqlite:///{home.resolve()}/tagscope.sqlite")
    with db.session() as s:
        mv = s.scalars(select(ModelVersion)).one()
        images = {i.id: i for i in s.scalars(select(Image))}
        tags: dict[int, dict[str, float]] = {}
        for image_id, name, score in s.execute(select(Tag.image_id, Label.name, Tag.score)
                                               .join(Label, Label.id == Tag.label_id)):
            tags.setdefault(image_id, {})[name] = score
    index = VectorIndex.open(home / "index", mv.version, mv.embed_dim)
    out = {}
    for image_id, img in images.items():
        vec = index.index.reconstruct(image_id) if index.contains(image_id) else None
        out[img.path] = (img.status, tags.get(image_id, {}), vec)
    return out


def assert_same_collection(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for path in a:
        (sa, ta, va), (sb, tb, vb) = a[path], b[path]
        assert sa == sb, path
        assert ta.keys() == tb.keys(), path
        for label in ta:
            assert ta[label] == pytest.approx(tb[label], abs=1e-4), (path, label)
        assert (va is None) == (vb is None), path
        if va is not None:
            assert np.allclose(va, vb, atol=1e-4), path


@pytest.fixture(scope="module")
def in_process(tmp_path_factory, synthetic_photos):
    home = tmp_path_factory.mktemp("in-process")
    run_cli("tag", str(synthetic_photos), "--model", "synthetic", "--batch-size", "32", home=home)
    return home


@pytest.mark.worker
@pytest.mark.slow
@pytest.mark.parametrize("broker, database", [("embedded", "sqlite"), ("redis", "postgresql"),
                                              ("rabbitmq", "sqlite")])
def test_worker_results_equal_the_in_process_run(broker, database, in_process, synthetic_photos, tmp_path,
                                                 request):
    broker_url = BROKERS[broker]()
    # TAGSCOPE_DEVICE=cpu: the workers tag on CPUs, so `auto` picks the CPU runtime the in-process
    # run picked (mkt.runtime; the job carries it to the workers)
    env = {"TAGSCOPE_BROKER_URL": broker_url, "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TASK_SIZE": "64",
           "TAGSCOPE_BATCH_SIZE": "32", "TAGSCOPE_DEVICE": "cpu"}
    db_url = None
    if database == "postgresql":
        db_url = request.getfixturevalue("postgres_url")
        env["TAGSCOPE_DATABASE_URL"] = db_url
        run_cli("db", "upgrade", home=tmp_path, **env)
    worker = start_worker(tmp_path, env)
    try:
        out = run_cli("tag", str(synthetic_photos), home=tmp_path, timeout=300, **env)
        assert "queued" in out.stderr
    finally:
        stop_process(worker)
    worker_log = (tmp_path / "worker.log").read_text()
    assert TAG_TASK in worker_log and "succeeded" in worker_log, worker_log[-3000:]
    assert_same_collection(collection_snapshot(in_process), collection_snapshot(tmp_path, db_url))


def wait_for_job(home: Path, env: dict[str, str], states: tuple[str, ...], timeout: float = 240) -> dict:
    """``tagscope status --json`` once the last job reached one of ``states``."""
    def reached() -> dict | None:
        status = json.loads(run_cli("status", "--json", home=home, **env).stdout)
        return status if (status["last_job"] or {}).get("state") in states else None

    return wait_until(reached, timeout=timeout, every=1, what=f"the last job {' or '.join(states)}")


@pytest.mark.worker
@pytest.mark.slow
def test_worker_runs_a_job_queued_elsewhere_on_its_own_device_and_batch_size(synthetic_photos, tmp_path):
    # The submitter's machine says cuda:7 and batch 3; a worker obeying it would fail here (no GPU).
    submitter = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_DEVICE": "cuda:7"}
    out = run_cli("tag", str(synthetic_photos), "--no-wait", "--batch-size", "3", home=tmp_path, **submitter)
    assert "queued" in out.stdout
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_DEVICE": "cpu"}
    worker = start_worker(tmp_path, env, "--batch-size", "50")
    try:
        st = wait_for_job(tmp_path, env, ("done", "failed"))
    finally:
        stop_process(worker)
    log = (tmp_path / "worker.log").read_text()
    assert st["last_job"]["state"] == "done", log[-3000:]
    assert st["images"]["tagged"] > 0 and st["index"]["size"] == st["images"]["tagged"]
    assert re.search(r"job 1: \d+ images on cpu, fp32 \(batch 50,", log), log[-3000:]


@pytest.mark.worker
@pytest.mark.slow
def test_worker_refuses_a_model_that_is_not_the_jobs_version(synthetic_photos, tmp_path):
    from mkt.bundle import load_bundle, save_bundle
    from mkt.factory import SYNTHETIC_BUNDLE

    bundle_path = tmp_path / "model.pt"
    shutil.copy(SYNTHETIC_BUNDLE, bundle_path)
    env = {"TAGSCOPE_BROKER_URL": "embedded", "TAGSCOPE_MODEL": f"mkt:{bundle_path}"}
    run_cli("tag", str(synthetic_photos), "--no-wait", home=tmp_path, **env)
    other = load_bundle(bundle_path)  # the file changes after the job was queued: another version
    other.head = {**other.head, "retrained": True}
    save_bundle(other, bundle_path)
    worker = start_worker(tmp_path, env)
    try:
        st = wait_for_job(tmp_path, env, ("done", "failed"))
    finally:
        stop_process(worker)
    assert st["last_job"]["state"] == "failed", (tmp_path / "worker.log").read_text()[-3000:]
    assert st["images"]["tagged"] == 0 and st["index"]["size"] == 0
    from core.schema import Job

    with get_database(f"sqlite:///{tmp_path.resolve()}/tagscope.sqlite").session() as s:
        error = s.scalars(select(Job.error)).one()
    assert "give every worker the same model file" in error and other.version in error


def test_worker_without_a_broker_explains_the_setting(tmp_path):
    proc = run_cli("worker", home=tmp_path, check=False)
    assert proc.returncode == 2 and "TAGSCOPE_BROKER_URL=embedded" in proc.stderr

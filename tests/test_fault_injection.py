"""Jobs survive killed workers: real ``tagscope worker`` processes killed with SIGKILL at random
moments mid-job and restarted, on the embedded broker, Redis and RabbitMQ, one or two workers
sharing the queue. The job must end ``done`` after the last restart (the dead workers' tasks sent
again), with every image tagged exactly once and the index holding exactly the tagged images."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
from sqlalchemy import func, select

from core.schema import TAGGED, Embedding, Image, ModelVersion, Tag
from indexer.vector_index import VectorIndex
from migrations import get_database

from .commands import run_cli
from .databases import tagged_count
from .photos import photos_subset
from .servers import start_worker, stop_process
from .services import BROKERS
from .waiting import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.slow]

N_IMAGES = 300
LEASE_S = 4  # a dead worker's task is sent again within about 1.25 leases
KILLS = 3
WAIT_S = 600  # bounds the wait for the job to end (about a lease and a quarter here), not its speed


def start_shared_log_worker(home: Path, env: dict[str, str]) -> subprocess.Popen:
    """A real worker in its own process group, appending to worker.log (several share it)."""
    return start_worker(home, env, "--loader-workers", "0", log_mode="a")


def job_row(home: Path, env: dict[str, str]) -> dict:
    return json.loads(run_cli("jobs", "show", "1", "--json", home=home, **env).stdout)


@pytest.mark.parametrize("broker, n_workers", [("embedded", 1), ("redis", 1), ("rabbitmq", 1), ("embedded", 2),
                                               ("redis", 2)])
def test_a_job_survives_workers_killed_at_random_moments(broker, n_workers, synthetic_photos, tmp_path):
    home = tmp_path / "home"
    url = f"sqlite:///{home.resolve()}/tagscope.sqlite"
    env = {"TAGSCOPE_BROKER_URL": BROKERS[broker](), "TAGSCOPE_MODEL": "synthetic", "TAGSCOPE_TASK_SIZE": "20",
           "TAGSCOPE_BATCH_SIZE": "2", "TAGSCOPE_LOADER_WORKERS": "0", "TAGSCOPE_TASK_LEASE": str(LEASE_S)}
    photos = photos_subset(synthetic_photos, tmp_path / "photos", N_IMAGES)
    run_cli("tag", str(photos), "--no-wait", home=home, **env)
    rng = random.Random(f"{broker}-{n_workers}")
    workers = [start_shared_log_worker(home, env) for _ in range(n_workers)]
    try:
        for _ in range(KILLS):
            target = tagged_count(url) + rng.randint(5, 25)
            wait_until(lambda target=target: tagged_count(url) >= target, timeout=120, every=0.1)
            time.sleep(rng.uniform(0, 0.1))  # mid-batch, mid-transaction, mid-merge: wherever it is (short: a
            # worker tags ~200 img/s here, and the job must outlive the last kill)
            victim = rng.randrange(n_workers)
            os.killpg(workers[victim].pid, signal.SIGKILL)
            workers[victim].wait(timeout=30)
            assert tagged_count(url) < N_IMAGES, "the job ended before the last kill: make it longer"
            workers[victim] = start_shared_log_worker(home, env)
        done = wait_until(lambda: (lambda j: j["state"] == "done" and j)(job_row(home, env)),
                          timeout=WAIT_S, every=1, what="the job done")
        wait_until(lambda: json.loads(run_cli("index", "status", "--json", home=home, **env).stdout)[0]["fresh"],
                   timeout=30, every=1)
    finally:
        for proc in workers:
            stop_process(proc)
    logs = (home / "worker.log").read_text()
    assert (done["done"], done["failed"], done["total"], done["remaining"]) == (N_IMAGES, 0, N_IMAGES, 0), logs[-3000:]
    db = get_database(url)
    with db.session() as s:
        tagged = sorted(s.scalars(select(Image.id).where(Image.status == TAGGED)))
        # Exactly once: one embedding per tagged image, one row per (image, label), every image by this job.
        assert sorted(s.scalars(select(Embedding.image_id))) == tagged
        assert s.scalar(select(func.count()).select_from(select(Tag.image_id, Tag.label_id)
                                                         .group_by(Tag.image_id, Tag.label_id)
                                                         .having(func.count() > 1).subquery())) == 0
        assert s.scalar(select(func.count()).select_from(Image).where(Image.job_id != 1)) == 0
        mv = s.scalars(select(ModelVersion)).one()
    assert len(tagged) == N_IMAGES
    index = VectorIndex.open(home / "index", mv.version, mv.embed_dim)
    assert np.array_equal(np.sort(faiss.vector_to_array(index.index.id_map)), np.asarray(tagged))

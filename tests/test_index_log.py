"""The index change log numbers entries in commit order (indexer.log): a reader's position can
never pass over an entry committed late. On PostgreSQL two writers really run at once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text

from core.schema import IndexChange, ModelVersion
from indexer import log as index_log
from migrations import get_database, upgrade

from .waiting import wait_until


def waiting_for(db, pid: int) -> bool:
    """Whether a PostgreSQL session waits for a lock that backend ``pid`` holds (asked in a
    transaction of its own: a transaction sees one snapshot of pg_stat_activity)."""
    with db.session() as s:
        return bool(s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
                             {"pid": pid}))


def test_a_second_writer_waits_until_the_first_commits_so_readers_see_a_prefix(postgres_url):
    upgrade(get_database(postgres_url, migrate=False))
    db = get_database(postgres_url)
    with db.session() as s:
        s.add(ModelVersion(version="v-log-test", spec="synthetic", embed_dim=4))
    with db.session() as s:
        mv = s.scalar(select(ModelVersion.id).where(ModelVersion.version == "v-log-test"))
    first = db.session()
    s1 = first.__enter__()
    thread = None
    try:
        index_log.append(s1, [{"model_version_id": mv, "image_id": 1}])
        s1.flush()  # the first writer took its number and has not committed
        done = threading.Event()

        def second() -> None:
            with db.session() as s2:
                index_log.append(s2, [{"model_version_id": mv, "image_id": 2}])
            done.set()

        thread = threading.Thread(target=second)
        thread.start()
        # The event: the second writer's session is waiting for a lock the first holds (PostgreSQL says so).
        first_pid = s1.scalar(text("SELECT pg_backend_pid()"))
        wait_until(lambda: done.is_set() or waiting_for(db, first_pid), timeout=120, every=0.05,
                   what="the second writer blocked or done")
        assert not done.is_set(), "the second writer must wait for the first to commit"
        assert index_log.since(db, mv, 0) == []  # nothing visible yet: no gap can form
    finally:
        first.__exit__(None, None, None)  # commit
        if thread is not None:
            thread.join(10)
    assert done.is_set()
    entries = index_log.since(db, mv, 0)
    assert [image for _, image in entries] == [1, 2] and entries[0][0] < entries[1][0]


def logged(tmp_path, n: int):
    """(database, model version id): a SQLite database with one version and ``n`` log entries (images 1 to n)."""
    db = get_database(f"sqlite:///{tmp_path}/log.sqlite")
    with db.session() as s:
        s.add(ModelVersion(version="v", spec="synthetic", embed_dim=4))
    with db.session() as s:
        mv = s.scalar(select(ModelVersion.id))
        index_log.append(s, [{"model_version_id": mv, "image_id": i} for i in range(1, n + 1)])
    return db, mv


def test_trim_keeps_what_a_live_copy_has_not_applied_and_never_reuses_a_number(tmp_path):
    db, mv = logged(tmp_path, 5)
    index_log.report(db, "host:/a", mv, 5, 5, "server")
    index_log.report(db, "host:/b", mv, 2, 2, "server")
    assert index_log.trim(db, mv) == 2 and len(index_log.since(db, mv, 0)) == 3
    index_log.report(db, "host:/b", mv, 5, 5, "server")
    assert index_log.trim(db, mv) == 5 and index_log.since(db, mv, 0) == []
    with db.session() as s:  # the log is empty: the next entry still gets a new number
        index_log.append(s, [{"model_version_id": mv, "image_id": 9}])
    with db.session() as s:
        assert s.scalar(select(IndexChange.id)) == 6
    assert index_log.head(db, mv) == 6 and index_log.floor(db, mv) == 5


@pytest.mark.parametrize("silent_for_days", [8])
def test_a_silent_copy_stops_holding_entries_back(tmp_path, silent_for_days):
    from datetime import timedelta

    from sqlalchemy import update

    from core.schema import IndexCopy, utcnow

    db, mv = logged(tmp_path, 3)
    index_log.report(db, "host:/live", mv, 3, 3, "server")
    index_log.report(db, "host:/gone", mv, 0, 0, "server")
    with db.session() as s:
        s.execute(update(IndexCopy).where(IndexCopy.name == "host:/gone")
                  .values(seen_at=utcnow() - timedelta(days=silent_for_days)))
    assert index_log.trim(db, mv) == 3
    assert [c.live for c in index_log.copies(db, mv)] == [True, False]


def test_a_server_on_an_empty_home_answers_from_the_store_and_builds_its_own_copy(tagged_home, tmp_path):
    """Another machine's server: same database, no index yet. Its first search is answered exactly
    from the stored embeddings; its copy is built in the background and /api/status says when."""
    from core.settings import load_settings
    from indexer.search.searcher import Searcher
    from web import create_app
    from web.context import get_searcher

    here = load_settings(environ={}, home=str(tagged_home))
    there = here.replace(index_folder=str(tmp_path / "other-machine" / "index"))
    expected = [h.image_id for h in Searcher(here).find("striped background", k=10).hits]
    from indexer.search.filters import Filters

    media = Filters.parse(None, media="photo")
    expected_filtered = [h.image_id for h in Searcher(here).find("red thing", k=10, filters=media).hits]
    app = create_app(there)
    client = app.test_client()
    first = client.get("/api/search", query_string={"q": "striped background", "k": 10}).get_json()
    assert [h["image_id"] for h in first["results"]] == expected  # exact, from the store
    filtered = client.get("/api/search", query_string={"q": "red thing", "k": 10, "media": "photo"}).get_json()
    assert [h["image_id"] for h in filtered["results"]] == expected_filtered
    get_searcher(app)._follower.wait(60)
    status = client.get("/api/status").get_json()["index"]
    assert status["state"] == "ready" and status["fresh"] and status["size"] == status["stored_embeddings"] == 480
    assert list((tmp_path / "other-machine" / "index").glob("*.faiss"))
    again = client.get("/api/search", query_string={"q": "striped background", "k": 10}).get_json()
    assert [h["image_id"] for h in again["results"]] == expected  # now from its own copy

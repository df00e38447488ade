"""Deleting what kombu's SQL transport delivered (tagger/jobs/broker_tidy.py), on a real kombu
broker: SQLite (the embedded one) and PostgreSQL."""

from __future__ import annotations

import pytest
from kombu import Connection

from tagger.jobs import broker_tidy
from tagger.jobs.celery_app import celery_app
from tagger.jobs.sweeper import sweep


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_broker(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    return "sqla+" + request.getfixturevalue("postgres_url")


def publish_then_take(url: str, sent: int, taken: int) -> list[int]:
    """Send ``sent`` messages to a queue, take and acknowledge ``taken`` of them; their bodies."""
    with Connection(url) as conn:
        queue = conn.SimpleQueue("tidy-test")
        for i in range(sent):
            queue.put({"n": i})
        bodies = []
        for _ in range(taken):
            message = queue.get(timeout=5)
            message.ack()
            bodies.append(message.payload["n"])
        queue.close()
    return bodies


def take_all(url: str) -> list[int]:
    with Connection(url) as conn:
        queue = conn.SimpleQueue("tidy-test")
        bodies = []
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                break
            message.ack()
            bodies.append(message.payload["n"])
        queue.close()
    return bodies


def test_delivered_messages_are_deleted_and_queued_ones_stay(sql_broker):
    assert broker_tidy.delete_delivered(sql_broker) == 0  # no table yet: nothing to do, no error
    assert publish_then_take(sql_broker, 7, 5) == [0, 1, 2, 3, 4]
    assert broker_tidy.delivered(sql_broker) == 5  # kombu kept them, invisible
    assert broker_tidy.delete_delivered(sql_broker, batch=2, max_batches=2) == 4  # bounded per pass
    assert broker_tidy.delivered(sql_broker) == 1
    assert broker_tidy.delete_delivered(sql_broker) == 1
    assert broker_tidy.delivered(sql_broker) == 0
    assert take_all(sql_broker) == [5, 6]  # what was still queued is delivered, in order
    assert broker_tidy.delete_delivered(sql_broker) == 2


def test_the_sweeper_tidies_the_embedded_broker(tmp_path):
    """A sweeper pass on the embedded broker deletes what it delivered (one of each of the
    worker's passes: tagger/jobs/sweeper.py)."""
    from core.settings import Settings

    settings = Settings(home=tmp_path / "home", broker_url="embedded")
    app = celery_app(settings)
    url = str(app.conf.broker_url)
    assert url == settings.embedded_broker_url
    publish_then_take(url, 3, 3)
    assert broker_tidy.delivered(url) == 3
    assert sweep(app, settings)["delivered_deleted"] == 3
    assert broker_tidy.delivered(url) == 0


def test_only_sql_brokers_are_tidied():
    assert broker_tidy.is_sql_broker("sqla+sqlite:////tmp/broker.sqlite")
    assert not broker_tidy.is_sql_broker("redis://127.0.0.1:6379/0")
    assert not broker_tidy.is_sql_broker("amqp://guest@127.0.0.1//")

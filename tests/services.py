"""The machine's shared servers the suite uses (PostgreSQL, Redis, RabbitMQ): where they are, and a
skip when one is not reachable, unless ``TAGSCOPE_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which
turns those skips into failures. ``BROKERS``: each broker a test can run on, emptied first."""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_ADMIN_URL = os.environ.get("TAGSCOPE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TAGSCOPE_TEST_REDIS", "redis://127.0.0.1:6379/15")
RABBITMQ_URL = os.environ.get("TAGSCOPE_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672//")


def services_required() -> bool:
    return os.environ.get("TAGSCOPE_REQUIRE_SERVICES", "") not in ("", "0")


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or fail, under TAGSCOPE_REQUIRE_SERVICES=1) when a server is not listening."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        message = f"{name} not reachable on {host}:{port} ({exc})"
    if services_required():
        pytest.fail(message + " and TAGSCOPE_REQUIRE_SERVICES=1")
    pytest.skip(message)


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def purge_rabbitmq(url: str) -> None:
    """Drop messages an earlier, interrupted run may have left in the queue."""
    from kombu import Connection

    from tagger.jobs.celery_app import TASK_QUEUE

    with Connection(url) as conn:
        channel = conn.channel()
        try:
            channel.queue_purge(TASK_QUEUE)
        except Exception:  # noqa: BLE001 - the queue does not exist yet
            pass


BROKERS = {
    "embedded": lambda: "embedded",
    "redis": lambda: (need_service("Redis", "127.0.0.1", 6379), flush_redis(REDIS_URL), REDIS_URL)[-1],
    "rabbitmq": lambda: (need_service("RabbitMQ", "127.0.0.1", 5672), purge_rabbitmq(RABBITMQ_URL),
                         RABBITMQ_URL)[-1],
}

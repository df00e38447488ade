"""The Celery application.

With no broker configured, tasks run in-process (``task_always_eager``): the same task code,
no server. ``TAGSCOPE_BROKER_URL=embedded`` uses kombu's SQLAlchemy transport on a SQLite file
in the data directory, so a real ``tagscope worker`` runs with no broker server. Past one
machine, point it at Redis (``redis://host:6379/0``) or RabbitMQ (``amqp://user:pass@host//``).
"""

from __future__ import annotations

from celery import Celery

from core.settings import Settings

TASK_QUEUE = "tagscope"


def broker_url(settings: Settings) -> str:
    if settings.broker_url == "embedded":
        return settings.embedded_broker_url
    return settings.broker_url


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app for ``settings``; tasks in :mod:`tagger.tasks` register with it."""
    app = Celery("tagscope", set_as_current=True)
    url = broker_url(settings)
    app.conf.update(
        broker_url=url or "memory://localhost/",
        task_always_eager=not url,
        task_eager_propagates=True,
        # Results travel through SQL (job counters), not a result backend.
        task_ignore_result=True,
        task_default_queue=TASK_QUEUE,
        # A batch is minutes of GPU work: take one at a time, acknowledge after it is stored,
        # so a worker that dies mid-batch hands it to another (tasks are idempotent).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    app.conf.tagscope_settings = settings
    import tagger.tasks  # noqa: F401  (registers the shared tasks)

    return app

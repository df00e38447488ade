"""The Celery application.

With no broker configured, tasks run in-process (``task_always_eager``): the same task code,
no server. ``TAGSCOPE_BROKER_URL=embedded`` uses kombu's SQLAlchemy transport on a SQLite file
in the data directory, so a real ``tagscope worker`` runs with no broker server. Past one
machine, point it at Redis (``redis://host:6379/0``) or RabbitMQ (``amqp://user:pass@host//``).

Settings that matter for long GPU batches, and why:

- ``task_acks_late`` + ``worker_prefetch_multiplier = 1``: a worker holds one message at a time
  and acknowledges it after the task's results are stored, so the broker still has the message
  of a task whose worker died, and no message waits behind a long batch in a busy worker.
- ``task_reject_on_worker_lost``: a task whose worker process dies is requeued, not acked.
- Leases (:mod:`tagger.jobs.leases`) and the sweeper (:mod:`tagger.jobs.sweeper`) do not rely on either:
  work a dead worker held is sent again within about a lease (``task_lease``, 60 s), on every
  broker, and a message delivered twice does nothing the second time.
- Redis's ``visibility_timeout`` (how long an unacknowledged message waits before Redis hands it
  to another worker; an hour by default) is set from the task length: ``task_size`` images at
  a pessimistic :data:`SECONDS_PER_IMAGE` on a CPU, twice over, at least :data:`MIN_VISIBILITY_S`.
  Shorter would send running tasks again (harmless, but wasted deliveries); longer only delays
  what the sweeper does anyway.
- The pool is ``solo`` (``tagscope worker``): one process per GPU that keeps the model loaded
  and starts its decode processes itself, once, at its first task (:mod:`tagger.decode_pool`; a
  prefork child may not have children). Scale with more worker processes, one per GPU
  (``--device cuda:N``). Recycling: the solo pool has no ``max_tasks_per_child``; memory stays
  flat because the model is cached once per process and the decode processes serve task after task;
  restart workers from the process supervisor (systemd ``Restart=always``) if a driver leaks.
- RabbitMQ closes a channel whose message stays unacknowledged past its ``consumer_timeout``
  (30 min by default): keep a task (``task_size`` images) well under it.
"""

from __future__ import annotations

import threading

from celery import Celery, signals

from core.settings import Settings
from tagger.jobs.task_names import TICK_TASK

TASK_QUEUE = "tagscope"
SECONDS_PER_IMAGE = 0.5  # a slow CPU worker decoding full-size photos
MIN_VISIBILITY_S = 600


def broker_url(settings: Settings) -> str:
    if settings.broker_url == "embedded":
        settings.home.mkdir(parents=True, exist_ok=True)  # its SQLite file's folder (a PostgreSQL home may have none)
        return settings.embedded_broker_url
    return settings.broker_url


def visibility_timeout(settings: Settings) -> int:
    """Seconds Redis waits for an unacknowledged task before handing it out again."""
    return int(max(MIN_VISIBILITY_S, 2 * settings.task_size * SECONDS_PER_IMAGE))


_apps: dict[Settings, Celery] = {}
_apps_guard = threading.Lock()


def celery_app(settings: Settings) -> Celery:
    """The Celery app of this process for ``settings``, built on first use and made the current
    app (so the tasks in :mod:`tagger.jobs.tasks` send through it). Every caller of one process
    shares it: the CLI, the web app and the worker. It starts nothing: the worker-only sweeper is
    attached by ``tagscope worker`` alone (:func:`attach_sweeper`)."""
    with _apps_guard:
        app = _apps.get(settings)
        if app is None:
            app = _apps[settings] = _build(settings)
    app.set_current()
    return app


def _build(settings: Settings) -> Celery:
    app = Celery("tagscope", set_as_current=False)
    url = broker_url(settings)
    app.conf.update(
        broker_url=url or "memory://localhost/",
        task_always_eager=not url,
        task_eager_propagates=True,
        # Results travel through SQL (image states), not a result backend.
        task_ignore_result=True,
        task_default_queue=TASK_QUEUE,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Redis only (other transports take no such option: the SQL one passes them to create_engine).
        broker_transport_options={"visibility_timeout": visibility_timeout(settings)}
        if url.startswith(("redis", "rediss")) else {},
        # A broker restart (Redis, RabbitMQ) is waited out, never the end of a worker: reconnect
        # forever, at start-up too; a channel error reopens the channel. What the broker lost
        # meanwhile (Redis without persistence: its whole queue) the sweeper sends again.
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        broker_channel_error_retry=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
        beat_schedule={"tagscope-schedules": {"task": TICK_TASK, "schedule": float(settings.beat_tick),
                                              "options": {"expires": float(settings.beat_tick)}}},
    )
    app.conf.tagscope_settings = settings
    import tagger.jobs.tasks  # noqa: F401  (registers the shared tasks)

    return app


def attach_sweeper(app: Celery, settings: Settings) -> None:
    """Start the sweeper thread (:mod:`tagger.jobs.sweeper`) once this process's worker consumes:
    called by ``tagscope worker`` only, never by clients, beat or the web app. Idempotent."""
    from tagger.jobs import sweeper

    def on_ready(sender=None, **_kw) -> None:
        if getattr(sender, "app", None) is app:
            sweeper.start(app, settings)

    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid=f"tagscope-sweeper-{id(app)}")


def beat_argv(settings: Settings) -> list[str]:
    """Where beat keeps its own state (last run times of its one entry): the data directory."""
    settings.home.mkdir(parents=True, exist_ok=True)
    return ["--schedule", str((settings.home / "celerybeat-schedule").resolve())]

"""The job machinery: job rows and their figures (``rows``), task leases (``leases``), starting a
job (``start``), the tasks Celery runs (``tasks``) on the app built once per process
(``celery_app``), closing a job (``close``), control from the CLI and the API (``control``), a
whole ``tagscope tag`` run (``run``), schedules (``schedules``) and the sweeper that hands out
again what dead workers held (``sweeper``).

The light modules (rows, leases, control, schedules) import neither torch nor faiss: commands
that only print SQL rows stay fast."""

"""The names of the Celery tasks (:mod:`tagger.jobs.tasks`) as they travel on the broker: what a
worker registers, what the sweeper sends again (:mod:`tagger.jobs.sweeper`) and what beat starts
(:mod:`tagger.jobs.celery_app`). Messages already queued carry them: renaming one strands those."""

TAG_TASK = "tagscope.tag_images"  # tag one task's images of a job
SCAN_TASK = "tagscope.start_job"  # register a queued job's folders and send its tasks
TICK_TASK = "tagscope.tick"  # beat's tick: start the schedules that are due

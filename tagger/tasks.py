"""Celery tasks: thin wrappers around plain functions that take ids, not objects."""

from __future__ import annotations

import logging

from celery import shared_task

from core.settings import load_settings
from tagger.tagging import tag_images

log = logging.getLogger(__name__)


@shared_task(name="tagscope.tag_images", bind=True)
def tag_images_task(self, job_id: int, image_ids: list[int]) -> dict[str, int]:
    """Tag one batch of images for a job with THIS worker's settings (device, batch size, decode
    workers); the model stays loaded in the worker process between tasks."""
    settings = getattr(self.app.conf, "tagscope_settings", None) or load_settings()
    progress = getattr(self.app.conf, "tagscope_progress", None)
    done, failed = tag_images(settings, job_id, image_ids, progress=progress)
    log.info("job %s: tagged %d, failed %d", job_id, done, failed)
    return {"done": done, "failed": failed}

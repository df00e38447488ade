"""Starting a tagging job without tagging here: what the web app's jobs page and ``POST /api/jobs``
do. The job is queued with its folders and model spec; a worker runs its scan (registers the
folders, picks what needs tagging, splits it into tasks: :func:`tagger.jobs.start.start_queued_job`)
and then its tasks, so the process that asked loads no model and reads no photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.db import Database
from core.errors import TagscopeError
from core.modelspec import parse_spec
from core.schema import collection_model_version
from core.settings import Settings
from tagger.jobs.rows import queue_scan_job
from tagger.params import JobParams

MAX_FOLDERS = 100
MAX_PATH_CHARS = 4096
WEB_JOB_KIND = "tag"


def model_spec(settings: Settings, db: Database, given: str | None = None) -> str:
    """The spec a new job or schedule tags with: the one given, else the ``model`` setting, else
    the collection's active model, else the default model (as ``tagscope schedule add`` picks)."""
    if given is not None and given.strip():
        return str(parse_spec(given.strip()))
    if settings.model is not None:
        return str(settings.model)
    with db.session() as s:
        current = collection_model_version(s)
    return current.spec if current is not None else str(settings.tagging_model)


def folders(paths: Sequence[str]) -> list[str]:
    """``paths`` as absolute folders (workers may run elsewhere), each checked, duplicates dropped."""
    given = [str(p).strip() for p in paths if str(p).strip()]
    if not given:
        raise TagscopeError("no folder given: name a folder of photos on the server, e.g. /photos/2023")
    if len(given) > MAX_FOLDERS:
        raise TagscopeError(f"{len(given)} folders given: at most {MAX_FOLDERS} at a time (give their parent)")
    out: list[str] = []
    for path in given:
        if len(path) > MAX_PATH_CHARS or "\x00" in path:
            raise TagscopeError(f"not a folder name: {path[:80]!r}...: give the folder of photos to tag")
        folder = Path(path).expanduser()
        if not folder.is_absolute():
            raise TagscopeError(f"{path} is a relative path: give the folder's full path on the server "
                                "(e.g. /photos/2023)")
        if not folder.is_dir():
            raise TagscopeError(f"{folder} is not a folder on the server: give the folder of photos to tag")
        resolved = str(folder.resolve())
        if resolved not in out:
            out.append(resolved)
    return out


def queue_job(settings: Settings, db: Database, paths: Sequence[str], spec: str | None = None) -> int:
    """A queued tagging job for ``paths`` with ``spec`` (default: :func:`model_spec`); its scan is
    still to be sent (:func:`tagger.jobs.tasks.send_scan_task`). Returns its id."""
    checked = folders(paths)
    chosen = model_spec(settings, db, spec)
    with db.session() as s:
        return queue_scan_job(s, checked, chosen, JobParams.from_settings(settings), settings.task_lease,
                              kind=WEB_JOB_KIND)

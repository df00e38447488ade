"""The schema's one home: every SQL table, a module per concern. Importing this package defines
them all on :data:`Base.metadata`, which is what Alembic's ``migrations/env.py`` compares and
migrates; a table defined anywhere else is one the migrations never see (``tests/test_schema.py``
fails). Adding a table: docs/architecture.md, "Adding a table"."""

from core.schema.base import Base, as_utc, iso_utc, utcnow
from core.schema.images import (
    DUPLICATE,
    FAILED,
    GROUP,
    IMAGE_STATES,
    KEYWORD,
    LABEL_KINDS,
    MISSING,
    PENDING,
    TAGGED,
    Image,
    Label,
    LabelCutoff,
    Tag,
    path_key,
)
from core.schema.index_log import IndexChange, IndexCopy, IndexLogFloor
from core.schema.jobs import Job, JobTask, Schedule
from core.schema.media import Media, VideoFrame
from core.schema.user_data import Feedback, SavedSearch
from core.schema.versions import (
    Embedding,
    LabelEmbedding,
    ModelVersion,
    collection_model_version,
    get_or_create_model_version,
    tagged_versions,
)
from core.schema.words import (
    FAILED_READ,
    FTS_TABLE,
    FTS_VOCAB,
    READ,
    READ_STATES,
    TRGM_INDEX,
    TSV_INDEX,
    PhotoText,
    TextRead,
    full_text_object,
)

__all__ = [
    "Base", "as_utc", "iso_utc", "utcnow",
    "DUPLICATE", "FAILED", "IMAGE_STATES", "MISSING", "PENDING", "TAGGED", "Image", "Label", "Tag", "path_key",
    "GROUP", "KEYWORD", "LABEL_KINDS", "LabelCutoff",
    "IndexChange", "IndexCopy", "IndexLogFloor",
    "Job", "JobTask", "Schedule",
    "Media", "VideoFrame",
    "Feedback", "SavedSearch",
    "FAILED_READ", "READ", "READ_STATES", "PhotoText", "TextRead",
    "FTS_TABLE", "FTS_VOCAB", "TRGM_INDEX", "TSV_INDEX", "full_text_object",
    "Embedding", "LabelEmbedding", "ModelVersion", "collection_model_version", "get_or_create_model_version",
    "tagged_versions",
]

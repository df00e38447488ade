"""The test suite. Helpers live in modules by concern: ``commands`` (the CLI), ``waiting``,
``services`` (the shared servers), ``databases``, ``servers`` (server and worker processes),
``photos``, ``bundles``, ``unprivileged``, ``freeze``, ``exiftool`` (reading XMP back); ``conftest``
holds the fixtures and the tier rules."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository

"""What a file that cannot be tagged becomes: an :class:`ImageDecodeError` with a short reason.

A photo folder can hold empty files, truncated uploads, text files with a ``.jpg`` name and
decompression bombs; every decoder here (:mod:`core.media.stills`, :mod:`core.media.raw`,
:mod:`core.media.video`) turns each of those into this error, never a crash of the whole batch.
"""

from __future__ import annotations

_MAX_REASON_CHARS = 200


class ImageDecodeError(Exception):
    """An image file that cannot be tagged.

    ``reason`` is a short human sentence suitable for showing in the UI or storing in the
    database, e.g. ``'empty file'``, ``'truncated image data'``,
    ``'not an image (unrecognised format)'`` or ``'decompression bomb: ... (raise max_pixels to allow it)'``.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def one_line(text: str) -> str:
    """``text`` on one line, at most 200 characters: fit for a reason."""
    text = " ".join(text.split())
    if len(text) > _MAX_REASON_CHARS:
        text = text[: _MAX_REASON_CHARS - 3] + "..."
    return text

"""Reading the words in photos: a wrapper over RapidOCR (PP-OCR's detection, direction and
recognition models, shipped in the ``rapidocr`` wheel, on ONNX Runtime).

What it adds to the engine:

- a lazy import that fails with one line naming the package (:func:`require`);
- images brought within bounds before the engine sees them (:func:`bounded`): the longest side
  at most :data:`MAX_SIDE` (the engine's own limit: its own rounding fails on a very thin image
  over it), the decompression-bomb limit of :mod:`core.media.limits` checked first;
- the detector run at most :data:`DET_SIDE` on its longer side (PaddleOCR's own default;
  RapidOCR's default scales the *shorter* side up to 736, 3-6x the time on a photo), the
  recogniser reading its crops from the bounded image: a photo with no text region costs the
  detector's time only, the engine returning after it;
- the result as :class:`Line` objects with boxes in the caller's pixels (``scale``), lines
  under :data:`MIN_CONFIDENCE` or of fewer than :data:`MIN_CHARACTERS` letters or digits
  dropped, and a script-based language where the script tells it (``zh``, ``ja``, ``ko``; None
  for Latin and others);
- one engine per process and device (:func:`engine_for`): ONNX Runtime's CUDA provider when the
  device is CUDA and ``onnxruntime-gpu`` provides it, else the CPU;
- :func:`engine_id`: the name, version and models, stored with every reading.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.errors import TagscopeError
from core.media.limits import check_pixels
from core.settings import DEFAULT_MAX_PIXELS
from core.words import fold

log = logging.getLogger(__name__)

PACKAGE = "rapidocr"
INSTALL = "pip install rapidocr"
MAX_SIDE = 2000  # the OCR image's longest side (RapidOCR's own max_side_len)
DET_SIDE = 960  # the detector's input, longest side
MIN_CONFIDENCE = 0.5  # RapidOCR's own text_score
MIN_CHARACTERS = 2  # letters or digits in a line kept: a lone character is mostly a shape read as O, 0, 8, +
DRAFT_SIDE = MAX_SIDE // 2  # a JPEG decoded for OCR keeps both sides >= this (libjpeg's draft scale)


class OcrUnavailable(TagscopeError):
    """rapidocr (or the ONNX Runtime under it) cannot be imported: the message names the package."""


@dataclass(frozen=True)
class Line:
    """One line of text: as read, its confidence (0-1), four ``[x, y]`` corners (clockwise from
    the top left of the text) in the caller's pixels, and the language when its script says it."""

    text: str
    confidence: float
    box: list[list[float]]
    language: str | None = None


@dataclass
class Reading:
    """What OCR made of one image: its lines, or why it could not read it (one line)."""

    lines: list[Line] = field(default_factory=list)
    error: str | None = None


def require() -> Any:
    """The ``rapidocr`` module, or :class:`OcrUnavailable` saying what to install."""
    try:
        return importlib.import_module(PACKAGE)
    except ImportError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OcrUnavailable(f"reading text in photos (OCR) needs the rapidocr package, which cannot be imported "
                             f"({reason}): {INSTALL}, or turn OCR off (TAGSCOPE_OCR=0)") from None


def importable() -> bool:
    """Whether ``rapidocr`` is installed, without importing it (cheap: a job submitter's check)."""
    return importlib.util.find_spec(PACKAGE) is not None


def _params(device: str) -> dict[str, Any]:
    params: dict[str, Any] = {"Global.log_level": "error", "Global.max_side_len": MAX_SIDE,
                              "Det.limit_type": "max", "Det.limit_side_len": DET_SIDE,
                              "Global.text_score": MIN_CONFIDENCE}
    if device.startswith("cuda") and _cuda_provider():
        params.update({"EngineConfig.onnxruntime.use_cuda": True,
                       "EngineConfig.onnxruntime.cuda_ep_cfg.device_id": _device_index(device),
                       # every photo has its own shape: an exhaustive search per shape costs more than it saves
                       "EngineConfig.onnxruntime.cuda_ep_cfg.cudnn_conv_algo_search": "HEURISTIC"})
    return params


def _cuda_provider() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _device_index(device: str) -> int:
    _, _, index = device.partition(":")
    return int(index) if index.isdigit() else 0


def engine_id() -> str:
    """``rapidocr VERSION PP-OCRv6 det small <=960, rec small, cls PP-OCRv4 mobile``: what a
    reading depends on (stored in ``text_reads.engine``)."""
    require()
    cfg = _config()
    det, rec, cls = cfg.Det, cfg.Rec, cfg.Cls
    return (f"rapidocr {_version()} "
            f"{_value(det.ocr_version)} det {_value(det.model_type)} <={DET_SIDE}, rec {_value(rec.model_type)}, "
            f"cls {_value(cls.ocr_version)} {_value(cls.model_type)}")[:120]


def _config() -> Any:
    from rapidocr.main import DEFAULT_CFG_PATH
    from rapidocr.utils.parse_parameters import ParseParams

    return ParseParams.load(DEFAULT_CFG_PATH)


def _version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)


def _value(x: Any) -> str:
    return str(getattr(x, "value", x))


def bounded(image: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB of a PIL image or array, its longest side at most :data:`MAX_SIDE`.

    Raises:
        ImageDecodeError: the image is over ``max_pixels``.
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        check_pixels((image.shape[1], image.shape[0]), max_pixels)
        if max(image.shape[:2]) <= MAX_SIDE:
            return np.array(image[..., :3], dtype=np.uint8)
        image = Image.fromarray(image[..., :3])
    check_pixels(image.size, max_pixels)
    image = image.convert("RGB")
    w, h = image.size
    if max(w, h) > MAX_SIDE:
        k = MAX_SIDE / max(w, h)
        image = image.resize((max(1, round(w * k)), max(1, round(h * k))), Image.Resampling.BILINEAR)
    return np.array(image, dtype=np.uint8)  # writable: it may travel as a tensor


_CJK = ((0x3040, 0x30FF, "ja"), (0xAC00, 0xD7AF, "ko"), (0x1100, 0x11FF, "ko"), (0x4E00, 0x9FFF, "zh"),
        (0x3400, 0x4DBF, "zh"))


def script_language(text: str) -> str | None:
    """The language a line's script names: kana ``ja``, hangul ``ko``, Han alone ``zh``; None
    for Latin, Cyrillic and the rest (the recogniser reads many languages in one script)."""
    found = set()
    for ch in text:
        code = ord(ch)
        found.update(lang for lo, hi, lang in _CJK if lo <= code <= hi)
    for lang in ("ja", "ko", "zh"):  # kana beside Han is Japanese
        if lang in found:
            return lang
    return None


class OcrEngine:
    """RapidOCR on one device. Thread-safe: calls take turns (ONNX Runtime spreads one call over
    the cores)."""

    def __init__(self, device: str = "cpu") -> None:
        rapidocr = require()
        self.device = device
        try:
            self._engine = rapidocr.RapidOCR(params=_params(device))
            self._engine(np.full((32, 32, 3), 255, np.uint8))  # loads the detector now: a broken runtime fails here
        except Exception as exc:  # noqa: BLE001 - a broken install: one line naming the package
            raise OcrUnavailable(f"the OCR engine cannot start ({type(exc).__name__}: {_one_line(exc)}): "
                                 f"reinstall it ({INSTALL}) or turn OCR off (TAGSCOPE_OCR=0)") from None
        self.id = engine_id()
        self.provider = "CUDA" if device.startswith("cuda") and _cuda_provider() else "CPU"
        self._lock = threading.Lock()

    def read(self, image: np.ndarray, scale: float = 1.0) -> list[Line]:
        """The lines of one ``uint8 [H, W, 3]`` RGB image (within :func:`bounded`'s bounds), in
        reading order; their boxes multiplied by ``scale`` (to the caller's pixels). Raises what
        the engine raises."""
        bgr = np.ascontiguousarray(image[..., ::-1])  # the models read OpenCV's channel order
        with self._lock:
            out = self._engine(bgr)
        if getattr(out, "txts", None) is None or out.boxes is None:
            return []  # no text region: the engine stopped after the detector
        lines = []
        for text, score, box in zip(out.txts, out.scores, out.boxes):
            text = " ".join(str(text).split())
            if float(score) < MIN_CONFIDENCE or len(fold(text).replace(" ", "")) < MIN_CHARACTERS:
                continue
            corners = [[round(float(x) * scale, 1), round(float(y) * scale, 1)] for x, y in np.asarray(box)[:4]]
            lines.append(Line(text, round(float(score), 4), corners, script_language(text)))
        return lines

    def read_many(self, images: Sequence[tuple[np.ndarray, float]]) -> list[Reading]:
        """:meth:`read` for each ``(image, scale)``, a failure on one becoming its reading's
        ``error`` (one line) instead of an exception."""
        out = []
        for image, scale in images:
            try:
                out.append(Reading(self.read(image, scale)))
            except Exception as exc:  # noqa: BLE001 - one photo's failure is recorded, the others read
                out.append(Reading(error=f"OCR failed: {type(exc).__name__}: {_one_line(exc)}"[:1000]))
        return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or "no message"


_engines: dict[str, OcrEngine] = {}
_engines_lock = threading.Lock()


def engine_for(device: str = "cpu") -> OcrEngine:
    """This process's engine for ``device`` (made once: loading the models takes about a second)."""
    key = f"cuda:{_device_index(device)}" if device.startswith("cuda") else "cpu"
    with _engines_lock:
        if key not in _engines:
            _engines[key] = OcrEngine(key)
            log.info("OCR: %s on %s", _engines[key].id, _engines[key].provider)
        return _engines[key]


def ratio(width: int, height: int, image: np.ndarray) -> float:
    """The factor from ``image``'s pixels to a ``width`` x ``height`` picture of the same view."""
    h, w = image.shape[:2]
    return max(width / w if w else 1.0, height / h if h else 1.0) if width and height else 1.0


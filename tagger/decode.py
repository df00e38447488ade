"""Decoding a job's photos at the size the model needs, in decode processes (:mod:`tagger.decode_pool`).

Each worker reads a file once (bytes and SHA-256), then either

- decodes it on the CPU, a JPEG in libjpeg's draft mode at the smallest scale that keeps the
  shorter side >= the model's input (a 12 MP photo: 1/8 scale, about 2.3x faster than a full
  decode), resizes and crops it with the model's own transform and hands over ``uint8
  [3, S, S]`` (:class:`mkt.pixels.InputGeometry`); or
- when the model runs on CUDA and the file is a plain JPEG, hands over its bytes for nvJPEG
  (``torchvision.io.decode_jpeg(device="cuda")``, one call per batch), which the main process
  decodes, orients, resizes and crops on the GPU (:func:`to_device`); a file nvJPEG refuses
  is decoded on the CPU instead.

With OCR on (the job's ``ocr``), each file also becomes a bounded RGB image for the OCR stage
(:mod:`tagger.ocr_stage`) from the same decode: ``ocr``, a list of ``(frame ms or None, uint8
[H, W, 3], scale to the photo's pixels)`` (a video: its frames already decoded). JPEGs then decode
at a larger draft scale (:data:`mkt.ocr.DRAFT_SIDE`; a RAW's preview and a video's frames as
the model gets them) and all on the CPU (no nvJPEG share: OCR,
not decoding, is then the slow stage); OCR-off runs are unchanged. A text-only job (no model:
neither ``preprocess`` nor ``geometry``) gets the OCR images alone. A file whose stored reading
is of the same bytes (``read``: its SHA-256, known once the file is read) is not read again.

HEIC, AVIF, RAW and video files always decode on the CPU (:func:`core.media.read.read_media`:
a RAW's preview when it is large enough, a video's sampled frames, handed over as ``pixels`` for
the first and ``more`` for the rest). What each file says about its shot (EXIF, the container's
tags) is read in the same pass and handed over as ``capture``.

Models whose transform has another shape fall back to running ``preprocess`` whole in the
workers (float tensors). A file that cannot be read or decoded becomes a reason, never an
exception out of the loader.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from core.media.errors import ImageDecodeError
from core.media.kinds import PHOTO, media_kind
from core.media.read import read_media
from core.media.stills import exif_capture, image_from_bytes, jpeg_header, read_file
from mkt.ocr import DRAFT_SIDE, bounded, ratio
from mkt.pixels import InputGeometry, resize_crop

log = logging.getLogger(__name__)

SHARE_SLOTS = 20  # the GPU decoder's share of JPEGs, in steps of 5%
IO_BATCH = 16  # files per decode chunk: small, so every worker is busy from the start
GPU_MEMORY_SHARE = 0.25  # of the free GPU memory, for one nvJPEG call's decoded frames


class PhotoFiles(Dataset):
    """``(image id, raw path)`` items -> dicts with ``pixels`` (uint8 or float tensor; a video's
    further frames in ``more`` with their ``times``), or ``jpeg`` (bytes for the GPU decoder), or
    ``error``; plus hash, size, format, ``kind``, ``decoder`` and ``capture``; with ``ocr``, the
    images OCR reads (``ocr``)."""

    def __init__(self, items: Sequence[tuple[int, bytes]], preprocess: Callable | None, max_pixels: int,
                 geometry: InputGeometry | None = None, gpu_share: float = 0.0, first: int = 0,
                 ocr: bool = False, read: Mapping[int, str] | None = None) -> None:
        self.items = items
        self.preprocess = preprocess
        self.max_pixels = max_pixels
        self.geometry = geometry
        self.ocr = ocr
        self.read = read or {}  # image id -> the content hash its stored reading is for: not read again
        # Item i goes to the GPU decoder when its slot among SHARE_SLOTS is below the share:
        # both decoders work on every batch at the same time.
        self.gpu_slots = round(gpu_share * SHARE_SLOTS) if geometry is not None and not ocr else 0
        self.gpu_share, self.first = gpu_share, first  # first: this part's place in the whole (GPU slots)

    def part(self, start: int, stop: int) -> PhotoFiles:
        """Items ``start:stop``, decoded as they would be in the whole (what a decode process is
        sent: the model's transform only where there is no geometry)."""
        items = self.items[start:stop]
        return PhotoFiles(items, self.preprocess if self.geometry is None else None, self.max_pixels, self.geometry,
                          self.gpu_share, self.first + start, self.ocr,
                          {i: self.read[i] for i, _ in items if i in self.read})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image_id, raw = self.items[i]
        try:
            return {"id": image_id, "error": None, **self._load(os.fsdecode(raw), i)}
        except ImageDecodeError as exc:
            return {"id": image_id, "error": exc.reason}
        except Exception as exc:  # a transform failing on odd pixels must not stop the job
            return {"id": image_id, "error": f"cannot process image: {type(exc).__name__}: {exc}"}

    def _load(self, path: str, i: int) -> dict[str, Any]:
        if (self.first + i) % SHARE_SLOTS < self.gpu_slots:
            data, digest = read_file(path)
            header = jpeg_header(data, self.max_pixels)
            if header is not None:
                info, orientation = header
                return {"jpeg": torch.frombuffer(bytearray(data), dtype=torch.uint8), "orientation": orientation,
                        "hash": digest, "width": info.width, "height": info.height, "format": info.format,
                        "kind": PHOTO, "decoder": "nvjpeg", "capture": exif_capture(data, os.stat(path).st_mtime)}
        draft = self.geometry.draft_size if self.geometry is not None else None
        if self.ocr and (media_kind(path) or PHOTO) == PHOTO:  # RAW previews and video frames as they come
            draft = max(draft or 0, DRAFT_SIDE)
        media = read_media(path, max_pixels=self.max_pixels, draft_size=draft)
        out = {"hash": media.digest, "width": media.info.width, "height": media.info.height,
               "format": media.info.format, "kind": media.kind, "decoder": media.decoder, "capture": media.capture}
        if self.ocr and self.read.get(self.items[i][0]) != media.digest:  # a reading of these bytes stays
            out["ocr"] = _for_ocr(media, self.max_pixels)
        prepare = self.geometry.to_uint8 if self.geometry is not None else self.preprocess
        if prepare is None:  # a text-only job: no model
            return out
        frames = [prepare(image) for _, image in media.frames]
        out["pixels"] = frames[0]
        if media.frames[0][0] is not None:  # a video: every frame is embedded, the item is their best
            out["times"] = [t for t, _ in media.frames]
            out["more"] = torch.stack(frames[1:]) if len(frames) > 1 else None
        return out


def _for_ocr(media: Any, max_pixels: int) -> list[tuple[int | None, torch.Tensor, float]] | str:
    """What OCR reads of a decoded file: per frame (a still: one, its time None), the image bounded
    (a tensor: shared memory across processes) and the factor to the photo's displayed pixels; or
    why there is none (one line: the photo is tagged all the same)."""
    out = []
    try:
        for t, image in media.frames:
            array = bounded(image, max_pixels)
            out.append((None if t is None else round(t * 1000), torch.from_numpy(array),
                        ratio(media.info.width, media.info.height, array)))
    except Exception as exc:  # noqa: BLE001 - OCR's image failing must not fail the photo's tagging
        return f"cannot prepare the image for OCR: {type(exc).__name__}: {' '.join(str(exc).split())}"[:1000]
    return out


def rebatch(loader: Iterable[dict[str, Any]], size: int) -> Iterator[dict[str, Any]]:
    """Model batches of ``size`` decodable images from the loader's small batches (``IO_BATCH``
    files each: one worker decodes a whole loader batch, so a 256-file loader batch of 12 MP
    photos keeps a worker busy for seconds while the others idle)."""
    pending: list[dict[str, Any]] = []
    held = 0
    for small in loader:
        pending.append(small)
        held += len(small["ok"])
        if held >= size:
            yield _merge(pending)
            pending, held = [], 0
    if pending:
        yield _merge(pending)


def _merge(batches: list[dict[str, Any]]) -> dict[str, Any]:
    if len(batches) == 1:
        return batches[0]
    ok = [it for b in batches for it in b["ok"]]
    stacks = [b["pixels"] for b in batches if b["ok"]]
    on_cpu = bool(stacks) and all(p is not None for p in stacks)
    return {"ok": ok, "pixels": torch.cat(stacks) if on_cpu else None,
            "failed": [it for b in batches for it in b["failed"]]}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch: ``ok`` (decodable items, in order), ``pixels`` (their CPU-decoded tensors stacked,
    when all were decoded on the CPU), ``failed``."""
    ok = [it for it in items if it["error"] is None]
    on_cpu = bool(ok) and all("pixels" in it for it in ok)
    return {"ok": ok, "pixels": torch.stack([it["pixels"] for it in ok]) if on_cpu else None,
            "failed": [it for it in items if it["error"] is not None]}


# EXIF orientation -> (transpose H/W first, flip H, flip W), applied to [3, H, W] as PIL does.
_ORIENT = {2: (False, False, True), 3: (False, True, True), 4: (False, True, False), 5: (True, False, False),
           6: (True, False, True), 7: (True, True, True), 8: (True, True, False)}


def _orient(img: torch.Tensor, orientation: int) -> torch.Tensor:
    transpose, flip_h, flip_w = _ORIENT.get(orientation, (False, False, False))
    if transpose:
        img = img.transpose(-1, -2)
    dims = [d for d, f in ((-2, flip_h), (-1, flip_w)) if f]
    return img.flip(dims) if dims else img


def _gpu_decode(datas: list[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """nvJPEG on a list of files; on a refusal, file by file (None where it fails)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out: list[torch.Tensor | None] = []
        for data in datas:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out


def _gpu_chunk(items: list[dict[str, Any]], device: torch.device) -> int:
    """How many JPEGs one nvJPEG call takes: as many as possible (its throughput grows with the
    batch), within ``GPU_MEMORY_SHARE`` of the free memory for the full-size decoded frames."""
    if not items:
        return 1
    frame = max(it["width"] * it["height"] * 3 for it in items)
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else 1 << 34
    return max(1, min(len(items), int(GPU_MEMORY_SHARE * free) // frame))


def _cpu_fallback(item: dict[str, Any], geometry: InputGeometry, max_pixels: int) -> torch.Tensor | None:
    try:
        image, _ = image_from_bytes(bytes(item["jpeg"].numpy()), max_pixels)
        return geometry.to_uint8(image)
    except ImageDecodeError as exc:
        item["error"] = exc.reason
        return None


def to_device(batch: dict[str, Any], geometry: InputGeometry | None, device: torch.device,
              max_pixels: int) -> torch.Tensor:
    """The batch's pixels on ``device`` (uint8 ``[B, 3, S, S]``, or float without a geometry),
    decoding GPU-bound JPEGs there, as many at a time as memory allows (:func:`_gpu_chunk`: a
    12 MP frame is 36 MB on the GPU).
    Items no decoder could read move from ``ok`` to ``failed``."""
    if batch["pixels"] is not None:
        return batch["pixels"].to(device, non_blocking=True)
    ok = batch["ok"]
    pixels: list[torch.Tensor | None] = [None] * len(ok)
    jpeg_at = [n for n, it in enumerate(ok) if "jpeg" in it]
    step = _gpu_chunk([ok[n] for n in jpeg_at], device)
    for start in range(0, len(jpeg_at), step):
        chunk = jpeg_at[start:start + step]
        for n, img in zip(chunk, _gpu_decode([ok[n]["jpeg"] for n in chunk], device)):
            if img is not None:
                pixels[n] = resize_crop([_orient(img, ok[n]["orientation"])], geometry)[0]
            else:
                cpu = _cpu_fallback(ok[n], geometry, max_pixels)
                pixels[n] = cpu.to(device) if cpu is not None else None
    for n, it in enumerate(ok):
        if "pixels" in it:
            pixels[n] = it["pixels"].to(device, non_blocking=True)
    batch["failed"] += [it for it, px in zip(ok, pixels) if px is None]
    batch["ok"] = [it for it, px in zip(ok, pixels) if px is not None]
    kept = [px for px in pixels if px is not None]
    return torch.stack(kept) if kept else torch.empty(0, 3, geometry.size, geometry.size, dtype=torch.uint8)


def describe(geometry: InputGeometry | None, gpu_share: float) -> str:
    if geometry is None:
        return "the model's own transform in the decode workers (float32 across processes)"
    where = "draft-mode JPEG decode in the workers"
    if gpu_share >= 1:
        where = "nvJPEG on the GPU (CPU fallback per file)"
    elif gpu_share > 0:
        where = f"{gpu_share:.0%} of JPEGs by nvJPEG on the GPU, the rest in draft mode in the workers"
    return f"{where}, uint8 {geometry.size}x{geometry.size} across processes"

"""Decoding at the size the model needs: the uint8 split of the transform is exact, JPEG draft
mode agrees with a full decode, the GPU path's orientation and geometry match PIL's, and the
loader's small batches merge back into model batches."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from core.media.stills import jpeg_header, read_image
from mkt.pixels import InputGeometry, resize_crop
from tagger.decode import PhotoFiles, _orient, collate, rebatch, to_device


@pytest.fixture(scope="module")
def model():
    from mkt.factory import get_model

    return get_model("synthetic", "cpu")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list:
    from bench.photos import make_photo

    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i in range(16):
        path = folder / f"photo_{i:02d}.jpg"
        make_photo(100 + i, (1600, 1200)).save(path, quality=90)
        paths.append(path)
    return paths


def test_the_uint8_half_and_the_device_half_equal_the_models_own_transform(model):
    import open_clip

    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (301, 457, 3), dtype=np.uint8))
    _, _, vit_preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    for preprocess in (model.preprocess, vit_preprocess):
        geometry = InputGeometry.of(preprocess)
        assert geometry is not None
        pixels = geometry.to_uint8(image)
        assert pixels.dtype == torch.uint8 and pixels.shape == (3, geometry.size, geometry.size)
        assert torch.equal(geometry.normalize(pixels.unsqueeze(0))[0], preprocess(image))


def test_a_transform_of_another_shape_has_no_geometry():
    import torchvision.transforms as T

    assert InputGeometry.of(T.Compose([T.Resize((64, 80)), T.ToTensor()])) is None
    assert InputGeometry.of(lambda image: image) is None


@pytest.mark.slow
def test_draft_decode_agrees_with_a_full_decode_on_photo_like_jpegs(model, photos):
    geometry = InputGeometry.of(model.preprocess)
    image, info, _ = read_image(photos[0], draft_size=geometry.draft_size)
    assert image.size == (200, 150) and (info.width, info.height) == (1600, 1200)  # 1/8 scale, full size told
    full = torch.stack([model.preprocess(read_image(p)[0]) for p in photos])
    draft = geometry.normalize(torch.stack([geometry.to_uint8(read_image(p, draft_size=geometry.draft_size)[0])
                                            for p in photos]))
    with torch.inference_mode():
        e_full, e_draft = model.encode_images(full), model.encode_images(draft)
        cosine = (e_full.global_ * e_draft.global_).sum(-1)
        labels = model.encode_labels(model.labels)
        top_full = model.score(e_full, labels).topk(5).indices.tolist()
        top_draft = model.score(e_draft, labels).topk(5).indices.tolist()
    assert cosine.mean() >= 0.995 and cosine.min() >= 0.99, cosine
    agreement = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top_full, top_draft)])
    assert agreement >= 0.9 and all(a[0] == b[0] for a, b in zip(top_full, top_draft)), agreement


def _rotated_jpeg(orientation: int) -> bytes:
    rng = np.random.default_rng(orientation)
    base = np.zeros((90, 160, 3), np.uint8)
    base[:30, :40] = (255, 0, 0)  # a red corner that shows where "top left" went
    base[30:] = rng.integers(0, 60, (60, 160, 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    Image.fromarray(base).save(out, format="JPEG", quality=95, exif=exif)
    return out.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_gpu_paths_orientation_and_geometry_match_pils(orientation, model, tmp_path):
    from torchvision.io import ImageReadMode, decode_jpeg

    geometry = InputGeometry.of(model.preprocess)
    data = _rotated_jpeg(orientation)
    path = tmp_path / "rotated.jpg"
    path.write_bytes(data)
    info, told = jpeg_header(data)
    pil_image, pil_info, _ = read_image(path)
    assert told == orientation and (info.width, info.height) == (pil_info.width, pil_info.height)
    decoded = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    upright = _orient(decoded, orientation)
    assert torch.equal(upright, torch.from_numpy(np.asarray(pil_image).copy()).permute(2, 0, 1))
    gpu_like = resize_crop([upright], geometry)[0].float()
    reference = geometry.to_uint8(pil_image).float()
    assert (gpu_like - reference).abs().mean() < 3  # antialiased bicubic both: same picture, same crop


def test_jpeg_header_only_offers_plain_jpegs(tmp_path):
    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8)).save(cmyk, format="JPEG")
    assert jpeg_header(png.getvalue()) is None and jpeg_header(cmyk.getvalue()) is None
    assert jpeg_header(b"\xff\xd8 not really a jpeg") is None


def test_a_gpu_share_splits_files_between_the_decoders_and_both_give_the_same_batch(model, photos, tmp_path):
    geometry = InputGeometry.of(model.preprocess)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:5000])  # a valid header, truncated data
    items = [(i, os.fsencode(p)) for i, p in enumerate([broken, *photos[:11]])]
    cpu = collate([PhotoFiles(items, model.preprocess, 10**9, geometry)[i] for i in range(len(items))])
    mixed = collate([PhotoFiles(items, model.preprocess, 10**9, geometry, gpu_share=0.5)[i]
                     for i in range(len(items))])
    assert [it["id"] for it in mixed["ok"] if "jpeg" in it] == list(range(10))  # slots 0-9 of 20: nvJPEG
    assert [it["id"] for it in cpu["failed"]] == [0] and mixed["failed"] == []  # the header looked fine
    on_device = to_device(mixed, geometry, torch.device("cpu"), 10**9)  # torchvision decodes on the CPU here
    assert [it["id"] for it in mixed["failed"]] == [0] and "truncated" in mixed["failed"][0]["error"]
    assert on_device.shape == cpu["pixels"].shape
    assert (on_device.float() - cpu["pixels"].float()).abs().mean() < 3


def test_small_loader_batches_merge_into_model_batches():
    def small(ids, failed=()):
        ok = [{"id": i, "pixels": torch.full((3, 2, 2), i, dtype=torch.uint8), "error": None} for i in ids]
        bad = [{"id": i, "error": "bad"} for i in failed]
        return collate(ok + bad)

    loader = [small([1, 2]), small([3], failed=[4]), small([5, 6]), small([], failed=[7]), small([8])]
    batches = list(rebatch(loader, 3))
    assert [[it["id"] for it in b["ok"]] for b in batches] == [[1, 2, 3], [5, 6, 8]]
    assert [[it["id"] for it in b["failed"]] for b in batches] == [[4], [7]]
    assert batches[1]["pixels"][:, 0, 0, 0].tolist() == [5, 6, 8]

"""The training images of an MKT run: annotations (or the synthetic world), the seen/unseen
split, the augmenting transform and the seeded (distributed) data loader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from core.errors import TagscopeError
from mkt.annotations import Example, Split, read_annotations, read_label_list
from mkt.synthetic import generate, synthetic_split
from mkt.training.config import TrainConfig
from mkt.training.data import LabelledImages


@dataclass
class TrainingData:
    root: Path                 # the folder image paths are relative to
    examples: list[Example]    # only images with a positive seen label
    split: Split


def _read(cfg: TrainConfig) -> tuple[Path, list[Example], Split]:
    if cfg.train == "synthetic":
        split = synthetic_split(cfg.synthetic_unseen, seed=cfg.synthetic_split_seed)
        root = Path(cfg.images or Path(cfg.out).parent / f"synthetic-train-{cfg.synthetic_seed}-{cfg.synthetic_n}")
        if not (root / "labels.jsonl").exists() and (not dist.is_initialized() or dist.get_rank() == 0):
            generate(root, n=cfg.synthetic_n, seed=1000 + cfg.synthetic_seed)
        if dist.is_initialized():
            dist.barrier()  # the other ranks read what rank 0 generated
        return root, read_annotations(root / "labels.jsonl"), split
    if not cfg.train or not cfg.images or not cfg.seen:
        raise TagscopeError("training needs --train ANNOTATIONS --images FOLDER --seen SEEN.txt "
                            "(or --train synthetic)")
    split = Split(read_label_list(cfg.seen), read_label_list(cfg.unseen) if cfg.unseen else [])
    return Path(cfg.images), read_annotations(cfg.train), split


def training_data(cfg: TrainConfig) -> TrainingData:
    root, examples, split = _read(cfg)
    # Images with no positive SEEN label teach the ranking loss nothing: dropped (as official).
    seen_set = set(split.seen)
    examples = [ex for ex in examples if ex.labels & seen_set]
    if not examples:
        raise TagscopeError("no training image has a positive seen label: check --seen against the annotations")
    return TrainingData(root, examples, split)


def train_transform(cfg: TrainConfig, preprocess: Any):
    """timm's RandAugment + RandomResizedCrop at the model's resolution and normalisation."""
    from timm.data import create_transform
    from torchvision import transforms as T

    norm = next(t for t in preprocess.transforms if isinstance(t, T.Normalize))
    size = next(t for t in preprocess.transforms if isinstance(t, T.CenterCrop)).size
    return create_transform(size[0], is_training=True, scale=cfg.crop_scale, hflip=cfg.hflip,
                            auto_augment=None if cfg.augment == "none" else cfg.augment,
                            color_jitter=0.0, interpolation="bicubic", mean=tuple(norm.mean), std=tuple(norm.std))


@dataclass
class Batches:
    """The loader and what reseeds it each epoch (the sampler only under DDP)."""

    loader: DataLoader
    sampler: DistributedSampler | None
    generator: torch.Generator

    def start_epoch(self, epoch: int, seed: int) -> None:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.generator.manual_seed(seed + epoch)


def make_batches(cfg: TrainConfig, data: TrainingData, preprocess: Any, world: int, device: torch.device) -> Batches:
    dataset = LabelledImages(data.root, data.examples, data.split.seen, train_transform(cfg, preprocess))
    sampler = DistributedSampler(dataset, seed=cfg.seed, drop_last=True) if world > 1 else None
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=cfg.workers, drop_last=len(dataset) > cfg.batch_size, generator=generator,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)
    return Batches(loader, sampler, generator)

"""What pretraining and fine-tuning share: transforms, loaders, an epoch of SGD, predictions,
and Ray Train checkpoints. Everything here runs inside a Ray Train worker (or a plain process:
with no process group, it is one worker)."""

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from torch import nn
from torchvision.transforms import v2 as transforms

from formats.images import ImageDataset, collate_skipping_unreadable


def image_transform(size: int, train: bool, mean: tuple[float, ...], std: tuple[float, ...]) -> Callable:
    """Random-resized crops and flips for training; a resize for evaluation; the model's normalisation."""
    steps = (
        [transforms.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), transforms.RandomHorizontalFlip()]
        if train
        else [transforms.Resize((size, size), antialias=True)]
    )
    return transforms.Compose(
        [transforms.ToImage(), *steps, transforms.ToDtype(torch.float32, scale=True),
         transforms.Normalize(mean, std)]
    )  # fmt: skip


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def loader(dataset, batch_size: int, train: bool, seed: int, workers: int) -> torch.utils.data.DataLoader:
    """Training loaders shard the data over the workers; evaluation loaders see all of it on
    every worker, so every worker computes the same, exact metric."""
    rank, size = world()
    sampler = (
        torch.utils.data.DistributedSampler(dataset, size, rank, shuffle=True, seed=seed, drop_last=True)
        if train
        else torch.utils.data.SequentialSampler(dataset)
    )
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, generator=generator,
        collate_fn=collate_skipping_unreadable, persistent_workers=workers > 0, drop_last=train,
    )  # fmt: skip


def prepare(model: nn.Module, use_gpu: bool) -> nn.Module:
    """On the worker's device, in channels-last on GPUs, wrapped in DDP when there are several
    workers (Ray Train's ``prepare_model``)."""
    if use_gpu:
        model = model.to(memory_format=torch.channels_last)
    return ray.train.torch.prepare_model(model) if dist.is_initialized() else model


def train_epoch(model, data, optimizer, loss_fn, device, use_amp: bool, epoch: int) -> dict:
    """One pass of SGD; returns the mean loss, images seen by all workers, images per second and
    unreadable images skipped."""
    model.train()
    if isinstance(data.sampler, torch.utils.data.DistributedSampler):
        data.sampler.set_epoch(epoch)
    scaler = torch.amp.GradScaler(enabled=use_amp)
    started, total_loss, seen, skipped = time.perf_counter(), 0.0, 0, 0
    for images, targets, unreadable in data:
        skipped += unreadable
        if len(images) == 0:
            continue
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        if use_amp:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=use_amp):
            loss = loss_fn(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total_loss += loss.item() * len(images)
        seen += len(images)
    counts = torch.tensor([seen, skipped, total_loss], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(counts)
    seconds = time.perf_counter() - started
    return {
        "train_loss": float(counts[2] / max(counts[0], 1)),
        "images_seen": int(counts[0]),
        "images_per_s": float(counts[0] / seconds),
        "unreadable_skipped": int(counts[1]),
    }


def examples_dataset(examples, transform: Callable, multilabel: bool = False) -> ImageDataset:
    """A task's ``tasks.Examples`` as a dataset: class indices, or multi-hot vectors for multi-label tasks."""
    targets = torch.as_tensor(examples.targets, dtype=torch.float32 if multilabel else torch.int64)
    return ImageDataset(examples.root, examples.paths, targets, transform, examples.crops)


@torch.no_grad()
def predict(model, data, device, forward: Callable = nn.Module.__call__) -> tuple[np.ndarray, np.ndarray]:
    """Scores (``forward(model, images)``, by default the model's output) and targets for every readable item
    of an evaluation loader."""
    model.eval()
    scores, targets = [], []
    for images, batch_targets, _ in data:
        if len(images):
            scores.append(forward(model, images.to(device)).float().cpu())
            targets.append(batch_targets)
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()


def restore(files: list[str]) -> dict[str, dict] | None:
    """The named files of the latest Ray Train checkpoint, loaded; None when starting fresh."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return {name: torch.load(Path(directory) / name, map_location="cpu", weights_only=True) for name in files}


def report(metrics: dict, save: Callable[[Path], None]) -> None:
    """Reports ``metrics`` with a checkpoint that rank 0 writes with ``save(directory)``. Every
    worker must call this (Ray Train V2 keeps only metrics that come with a checkpoint)."""
    rank, _ = world()
    if rank != 0:
        ray.train.report(metrics, checkpoint=None)
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as directory:
        save(Path(directory))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory))

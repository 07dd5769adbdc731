"""What pretraining and fine-tuning share: batches of prepared images, an epoch of SGD, predictions, and Ray
Train checkpoints. Everything here runs inside a Ray Train worker (or a plain process: with no process group, it
is one worker)."""

import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from formats.prepared import PreparedImages, prepare_images, prepared_size
from tasks.metrics import IGNORED

CROP_SCALE, CROP_RATIO = (0.35, 1.0), (3 / 4, 4 / 3)


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


class Batches:
    """Minibatches of prepared images (formats.prepared), augmented as whole batches on the training device.

    ``parts``: (prepared images, rows of them); the items are those rows in order, item ``i`` with target
    ``targets[i]``. Training batches are random-resized crops (area 0.35-1, aspect 3/4-4/3, as torchvision's
    ``RandomResizedCrop``) resized and flipped at random, in a new order every epoch
    (``set_epoch``), sharded over the workers as ``DistributedSampler`` shards, the last partial batch dropped.
    Evaluation batches are every item in order on every worker, so that every worker computes the same, exact
    metric, each image resized whole. Unreadable images (marked when prepared) are left out and counted in
    ``skipped``. A thread gathers the next batch's pixels while the current one computes.
    """

    def __init__(self, parts: list[tuple[PreparedImages, np.ndarray]], targets, *, image_size: int, train: bool,
                 batch_size: int, seed: int, mean, std, device: torch.device):  # fmt: skip
        source = np.concatenate([np.full(len(rows), k, np.int64) for k, (_, rows) in enumerate(parts)])
        rows = np.concatenate([rows for _, rows in parts])
        readable = np.concatenate([images.readable[rows] for images, rows in parts])
        self.pixels = [images.pixels for images, _ in parts]
        self.source, self.rows, self.targets = source[readable], rows[readable], torch.as_tensor(targets)[readable]
        self.skipped = int((~readable).sum())
        self.image_size, self.train, self.batch_size, self.seed, self.epoch = image_size, train, batch_size, seed, 0
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1) * 255
        self.device = device

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _order(self) -> list[torch.Tensor]:
        if self.train:
            rank, size = world()
            order = torch.randperm(len(self.rows), generator=torch.Generator().manual_seed(self.seed + self.epoch))
            shard = order[: len(order) // size * size][rank::size]
            items = shard[: len(shard) // self.batch_size * self.batch_size]
        else:
            items = torch.arange(len(self.rows))
        return [batch for batch in items.split(self.batch_size) if len(batch)]  # none at all from no items

    def _gather(self, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        items = items.sort().values.numpy()  # rows in file order read faster; a batch's order does not matter
        pixels = np.empty((len(items), *self.pixels[0].shape[1:]), np.uint8)
        for k, array in enumerate(self.pixels):
            mine = self.source[items] == k
            pixels[mine] = array[self.rows[items][mine]]
        pixels = torch.from_numpy(pixels)
        if self.device.type == "cuda":
            pixels = pixels.pin_memory()
        return pixels, self.targets[items]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch + 1_000_003 * world()[0])
        with ThreadPoolExecutor(1) as pool:
            pending = None
            for items in self._order():
                upcoming = pool.submit(self._gather, items)
                if pending is not None:
                    yield self._finish(*pending.result(), generator)
                pending = upcoming
            if pending is not None:
                yield self._finish(*pending.result(), generator)

    def _finish(self, pixels: torch.Tensor, targets: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
        images = pixels.to(self.device, non_blocking=True).permute(0, 3, 1, 2)  # channels-last in memory
        if self.device.type != "cpu":
            images = images.float()  # resampling uint8 is the CPU's fast path only
        if self.train:
            images = random_resized_crops(images, self.image_size, generator)
        elif images.shape[-1] != self.image_size:
            images = F.interpolate(images, size=(self.image_size,) * 2, mode="bilinear", antialias=True)
        return images.float().sub_(self.mean).div_(self.std), targets.to(self.device, non_blocking=True)


def random_resized_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random crop of every image (area and aspect drawn as by torchvision's ``RandomResizedCrop``, clipped to
    the image), resized to ``size`` x ``size`` with antialiasing, half of them flipped left to right."""
    count, _, height, width = images.shape
    area = torch.empty(count).uniform_(*CROP_SCALE, generator=generator) * height * width
    aspect = torch.empty(count).uniform_(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), generator=generator).exp()
    crop_width = (area * aspect).sqrt().round().clamp(1, width).long()
    crop_height = (area / aspect).sqrt().round().clamp(1, height).long()
    left = (torch.rand(count, generator=generator) * (width - crop_width + 1)).long()
    top = (torch.rand(count, generator=generator) * (height - crop_height + 1)).long()
    flip = (torch.rand(count, generator=generator) < 0.5).tolist()
    crops = []
    for k, (x, y, w, h) in enumerate(zip(left.tolist(), top.tolist(), crop_width.tolist(), crop_height.tolist())):
        crop = F.interpolate(images[k : k + 1, :, y : y + h, x : x + w], size=(size, size), mode="bilinear",
                             antialias=True)  # fmt: skip
        crops.append(crop.flip(-1) if flip[k] else crop)
    return torch.cat(crops)


def example_batches(examples, image_size: int, train: bool, batch_size: int, seed: int, mean, std, device,
                    workers: int, multilabel: bool = False, crop_pct: float | None = None) -> Batches:  # fmt: skip
    """A task's ``tasks.Examples`` as batches: class indices, or multi-hot vectors for multi-label tasks.

    Training images are squashed whole, so that random crops draw from all of each image. Evaluation images, with
    ``crop_pct`` (timm's term), are the centred ``image_size`` square of the image with its shorter side resized to
    ``image_size / crop_pct``, prepared as such (Kornblith et al.'s view: 1.0 for fixed features, 224/256 after
    fine-tuning); without it they are squashed and resized whole, the recipe of the Huh et al. grids."""
    view = None if train else crop_pct
    size = prepared_size(image_size) if view is None else image_size
    images = prepare_images(examples.root, examples.paths, size, examples.crops, workers, centre_crop_pct=view)
    targets = torch.as_tensor(examples.targets, dtype=torch.float32 if multilabel else torch.int64)
    return Batches([(images, np.arange(len(examples.paths)))], targets, image_size=image_size, train=train,
                   batch_size=batch_size, seed=seed, mean=mean, std=std, device=device)  # fmt: skip


def multilabel_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Each class's binary cross-entropy, averaged over the (image, class) pairs that count: an ``IGNORED`` target
    (neither positive nor negative) is left out."""
    counted = targets != IGNORED
    return F.binary_cross_entropy_with_logits(
        logits, targets.clamp(min=0), weight=counted.to(logits.dtype), reduction="sum"
    ) / counted.sum().clamp(min=1)


def prepare(model: nn.Module, use_gpu: bool) -> nn.Module:
    """On the worker's device, in channels-last on GPUs, wrapped in DDP when there are several
    workers (Ray Train's ``prepare_model``)."""
    if use_gpu:
        model = model.to(memory_format=torch.channels_last)
    return ray.train.torch.prepare_model(model) if dist.is_initialized() else model


def train_epoch(model, data: Batches, optimizer, loss_fn, device, use_amp: bool, epoch: int) -> dict:
    """One pass of SGD; returns the mean loss, images seen by all workers, images per second and
    unreadable images left out."""
    model.train()
    data.set_epoch(epoch)
    scaler = torch.amp.GradScaler(enabled=use_amp)
    started, total_loss, seen = time.perf_counter(), 0.0, 0
    for images, targets in data:
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
    counts = torch.tensor([seen, total_loss], dtype=torch.float64)
    if dist.is_initialized():
        dist.all_reduce(counts)
    seconds = time.perf_counter() - started
    return {
        "train_loss": float(counts[1] / max(counts[0], 1)),
        "images_seen": int(counts[0]),
        "images_per_s": float(counts[0] / seconds),
        "unreadable_skipped": data.skipped,
    }


@torch.no_grad()
def predict(model, data: Batches, forward: Callable = nn.Module.__call__) -> tuple[np.ndarray, np.ndarray]:
    """Scores (``forward(model, images)``, by default the model's output) and targets for every readable item
    of evaluation batches."""
    model.eval()
    scores, targets = [], []
    for images, batch_targets in data:
        scores.append(forward(model, images).float().cpu())
        targets.append(batch_targets.cpu())
    return torch.cat(scores).numpy(), torch.cat(targets).numpy()


def restore(files: list[str]) -> dict[str, dict] | None:
    """The named files of the latest Ray Train checkpoint, loaded; None when starting fresh, or when that
    checkpoint is another stage's (a grid point's worker group pretrains, then fine-tunes)."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        if not all((Path(directory) / name).is_file() for name in files):
            return None
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

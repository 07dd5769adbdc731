"""Images per second of the training input pipeline against the compute-only rate of the model it feeds, at the
paper's size (AlexNet, 224 px crops of 500 x 375 JPEGs), and the effect of trials sharing one prepared copy.

    .venv/bin/python benchmarks/input_pipeline.py [--images 512] [--batch-size 64] [--device cpu|cuda]

It prints, in one run, on one core (or the GPU with --device cuda, mixed precision and channels-last):
  compute only     training steps of AlexNet on one batch already in memory (the ceiling);
  per-image decode the pipeline before prepared images: PIL decodes each JPEG every epoch, torchvision's
                   RandomResizedCrop, flip and normalisation per image (input only);
  prepared         formats.prepared + trainers.engine.Batches: pixels gathered from the memory-mapped copy,
                   cropped, flipped and normalised as a batch (input only), and the one-time cost of preparing;
  end to end       training steps fed by each pipeline, and their ratio to compute only (target on a GPU: >= 0.9).
Then 1, 2 and 4 concurrent "trials" (processes, one thread each) read the same images for one epoch: each decoding
its own as before, or all reading the one prepared copy. Synthetic JPEGs are smoother than photographs, which
decode slower: the per-image figures flatter the old pipeline.
"""

import argparse
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2 as transforms

from formats.images import load_rgb
from formats.prepared import prepare_images, prepared_size
from models import create_model, normalisation
from synthetic.render import object_image, random_look
from trainers import engine

SIZE, WIDTH, HEIGHT = 224, 500, 375


def write_jpegs(folder: Path, count: int) -> list[str]:
    rng = np.random.default_rng(0)
    names = []
    for n in range(count):
        image, _ = object_image(random_look(rng), WIDTH, rng)
        Image.fromarray(image[:HEIGHT]).save(folder / f"{n}.jpg", quality=90)
        names.append(f"{n}.jpg")
    return names


def per_image_transform(mean, std):
    return transforms.Compose([
        transforms.ToImage(), transforms.RandomResizedCrop(SIZE, scale=engine.CROP_SCALE, antialias=True),
        transforms.RandomHorizontalFlip(), transforms.ToDtype(torch.float32, scale=True), transforms.Normalize(mean, std),
    ])  # fmt: skip


def per_image_batches(folder: Path, names: list[str], batch_size: int, transform):
    for start in range(0, len(names) // batch_size * batch_size, batch_size):
        images = torch.stack([transform(load_rgb(folder / name)) for name in names[start : start + batch_size]])
        yield images, torch.zeros(batch_size, dtype=torch.int64)


def prepared_batches(folder: Path, names: list[str], batch_size: int, device, mean, std) -> engine.Batches:
    prepared = prepare_images(folder, names, prepared_size(SIZE))
    return engine.Batches([(prepared, np.arange(len(names)))], torch.zeros(len(names), dtype=torch.int64),
                          image_size=SIZE, train=True, batch_size=batch_size, seed=0, mean=mean, std=std,
                          device=device)  # fmt: skip


def rate(batches, step=None, device=None) -> float:
    """Images per second of iterating ``batches`` (calling ``step(images, targets)`` on each)."""
    started, seen = time.perf_counter(), 0
    for images, targets in batches:
        images = images.to(device, non_blocking=True)
        if step is not None:
            step(images, targets.to(device))
        seen += len(images)
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - started)


def training_step(device):
    network = create_model("alexnet", 1000, {"variant": "imagenet"})
    model = engine.prepare(network.to(device), device.type == "cuda")
    optimizer = torch.optim.SGD(model.parameters(), 0.01, momentum=0.9)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler(enabled=use_amp)

    def step(images, targets):
        if use_amp:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=use_amp):
            loss = torch.nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return network, step


def one_trial(job) -> float:
    kind, folder, names, batch_size, mean, std = job
    torch.set_num_threads(1)
    batches = (per_image_batches(folder, names, batch_size, per_image_transform(mean, std)) if kind == "decode"
               else prepared_batches(folder, names, batch_size, torch.device("cpu"), mean, std))  # fmt: skip
    return rate(batches)


def concurrent(kind: str, trials: int, folder, names, batch_size, mean, std) -> float:
    """Images per second of ``trials`` processes each reading all ``names`` once, together."""
    with multiprocessing.get_context("fork").Pool(trials) as pool:
        started = time.perf_counter()
        pool.map(one_trial, [(kind, folder, names, batch_size, mean, std)] * trials)
        return trials * len(names) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TRANSFER_DATA_DIR"] = str(Path(tmp) / "data")  # a cold prepared copy
        folder = Path(tmp) / "jpegs"
        folder.mkdir()
        names = write_jpegs(folder, args.images)
        network, step = training_step(device)
        mean, std = normalisation(network)
        print(f"AlexNet at {SIZE} px, batch {args.batch_size}, {args.images} JPEGs of {WIDTH} x {HEIGHT}, on "
              f"{torch.cuda.get_device_name() if device.type == 'cuda' else '1 CPU core'}")  # fmt: skip
        in_memory = torch.randn(args.batch_size, 3, SIZE, SIZE, device=device)
        steps = max(3, args.images // args.batch_size)
        rate([(in_memory, torch.zeros(args.batch_size, dtype=torch.int64))], step, device)  # warm-up
        compute = rate([(in_memory, torch.zeros(args.batch_size, dtype=torch.int64))] * steps, step, device)
        print(f"  compute only        {compute:9.0f} images/s")
        transform = per_image_transform(mean, std)
        before = rate(per_image_batches(folder, names, args.batch_size, transform))
        started = time.perf_counter()
        prepared = prepared_batches(folder, names, args.batch_size, device, mean, std)
        prepare_seconds = time.perf_counter() - started
        after = rate(prepared)
        print(f"  per-image decode    {before:9.0f} images/s  (input only)")
        print(f"  prepared            {after:9.0f} images/s  (input only; x{after / before:.1f}; preparing took "
              f"{prepare_seconds:.1f} s once, {args.images / prepare_seconds:.0f} images/s)")  # fmt: skip
        end_before = rate(per_image_batches(folder, names, args.batch_size, transform), step, device)
        end_after = rate(prepared, step, device)
        print(
            f"  end to end, per-image decode {end_before:9.0f} images/s  ratio to compute only {end_before / compute:.2f}"
        )
        print(
            f"  end to end, prepared         {end_after:9.0f} images/s  ratio to compute only {end_after / compute:.2f}"
        )
        print(f"concurrent trials reading the same {args.images} images once each (images/s of all together, "
              f"{os.cpu_count()} cores):")  # fmt: skip
        for trials in (1, 2, 4):
            decoding = concurrent("decode", trials, folder, names, args.batch_size, mean, std)
            sharing = concurrent("prepared", trials, folder, names, args.batch_size, mean, std)
            print(f"  {trials} trial(s): each decoding {decoding:7.0f}   one prepared copy {sharing:7.0f}  "
                  f"(x{sharing / decoding:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()

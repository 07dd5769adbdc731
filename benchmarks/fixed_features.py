"""Throughput of Kornblith et al.'s fixed-feature protocol (trainers/fixed_features.py): penultimate features of
one of the paper's networks at its own input size, and the logistic regression's search over the paper's 45 l2
penalties (each fit warm-started from the last) plus the refit, on features of a realistic size.

    .venv/bin/python benchmarks/fixed_features.py [--model resnet50] [--images 64] [--device cpu|cuda]
        [--train 5000] [--classes 100]

It prints feature extraction in images/s (batches of prepared images through ``forward_features`` and
``forward_head(pre_logits=True)``, mixed precision on a GPU) and the seconds of one whole search: 45 fits on
``--train`` images of the network's feature size and ``--classes`` classes, each scored on as many validation
images, then the refit on both. The features are random: L-BFGS's iterations depend on the data, so real features
take a different time; the figure is the cost of the arithmetic at this size.
"""

import argparse
import time

import numpy as np
import torch

from models import create_model
from tasks.metrics import top1
from trainers.fixed_features import choose_and_refit, penalties
from trainers.probe import penultimate

PAPER_SEARCH = {"l2_min": 1e-6, "l2_max": 1e5, "l2_count": 45}


def extraction_rate(model: str, images: int, device: torch.device) -> tuple[float, int, int]:
    """Images per second through the network's penultimate layer, its input size and feature size."""
    network = create_model(model, 1000).to(device).eval()
    size = network.pretrained_cfg["input_size"][-1]
    batch = torch.randn(min(images, 32), 3, size, size, device=device)
    with torch.no_grad(), torch.autocast(device.type, enabled=device.type == "cuda"):
        penultimate(network, batch[:2])  # warm-up
        started, done = time.perf_counter(), 0
        while done < images:
            features = penultimate(network, batch)
            done += len(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return done / (time.perf_counter() - started), size, features.shape[1]


def search_seconds(train: int, dim: int, classes: int, device: torch.device) -> float:
    generator = torch.Generator().manual_seed(0)
    features, targets = {}, {}
    for split in ("train", "val", "test"):
        targets[split] = torch.randint(0, classes, (train,), generator=generator)
        centres = torch.randn(classes, dim, generator=torch.Generator().manual_seed(1))
        features[split] = centres[targets[split]] + 3 * torch.randn(train, dim, generator=generator)
    features["trainval"] = torch.cat([features["train"], features["val"]])
    targets["trainval"] = torch.cat([targets["train"], targets["val"]])
    features = {k: v.to(device) for k, v in features.items()}
    targets = {k: v.to(device) for k, v in targets.items()}
    started = time.perf_counter()
    choose_and_refit(features, targets, classes, penalties(PAPER_SEARCH), lambda s, t: {"top1": top1(s, t)}, "top1",
                     iterations=1000)  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50", help="a timm architecture (the paper's ResNet-50 by default)")
    parser.add_argument("--images", type=int, default=64, help="images to extract features of")
    parser.add_argument("--train", type=int, default=5000, help="training images of the search (and validation)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    torch.manual_seed(0)
    np.random.seed(0)
    rate, size, dim = extraction_rate(arguments.model, arguments.images, device)
    print(f"feature extraction: {arguments.model} at {size} px on {device}: {rate:.1f} images/s ({dim} features)")
    seconds = search_seconds(arguments.train, dim, arguments.classes, device)
    print(f"search: 45 l2 penalties and the refit, {arguments.train} train + {arguments.train} val images, "
          f"{dim} features, {arguments.classes} classes on {device}: {seconds:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()

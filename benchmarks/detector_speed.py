"""Training images per second of the VOC 2007 Faster R-CNN (``trainers.detect``) on the CPU, and on the GPU
when there is one.

    .venv/bin/python benchmarks/detector_speed.py                     # the paper's detector: width 1, 600 px
    .venv/bin/python benchmarks/detector_speed.py --variant small --width 0.25 --image-scale 84 --batch-size 4 \
        --rois-per-image 32 --test-proposals 50 --workers 0           # the embedded scale's detector

Each device runs in its own process (the CPU one with CUDA hidden, since mmengine trains on the GPU whenever
it sees one) on a freshly initialised AlexNet, the synthetic VOC and a temporary work_dir. The figure is
``finetune_detection``'s own: images over the wall time of every iteration after the first, checkpoint
saving included. The synthetic images are 224 x 168 px (``default``) and upscaled to ``--image-scale``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from models import create_model, save_checkpoint
from synthetic import voc
from trainers.detect import finetune_detection


def measure(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "alexnet.pt"
        save_checkpoint(checkpoint, create_model("alexnet", 1000, {"variant": args.variant, "width": args.width}))
        start = time.perf_counter()
        result = finetune_detection(
            checkpoint,
            voc.ensure(args.scale),
            Path(tmp) / "run",
            iterations=args.iterations,
            batch_size=args.batch_size,
            image_scale=args.image_scale,
            checkpoint_interval=args.iterations,
            rois_per_image=args.rois_per_image,
            test_proposals=args.test_proposals,
            workers=args.workers,
        )
        return {"images_per_second": result["images_per_second"], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="default", choices=["tiny", "default"])
    parser.add_argument("--variant", default="imagenet", choices=["imagenet", "small"])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image-scale", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--rois-per-image", type=int, default=128)
    parser.add_argument("--test-proposals", type=int, default=300)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", choices=["cpu", "cuda"], help="measure on this device only (internal)")
    args = parser.parse_args()
    if args.device:
        print(json.dumps(measure(args)))
        return

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"AlexNet {args.variant} variant, width {args.width}; synthetic VOC {args.scale}; "
        f"shorter side {args.image_scale} px; batch {args.batch_size}; {args.rois_per_image} RoIs per image; "
        f"{args.test_proposals} test proposals; {args.iterations} iterations; "
        f"{args.workers} loader workers; "
        f"{os.cpu_count()} cores; torch {torch.__version__}"
    )
    for device in devices:
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else os.environ
        name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        command = [sys.executable, __file__, *sys.argv[1:], "--device", device]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{device} run failed:\n{done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        speed, seconds = figures["images_per_second"], figures["seconds"]
        print(f"{name:30s} {speed:7.2f} images/s   ({seconds:.0f} s with set-up and test)")


if __name__ == "__main__":
    main()

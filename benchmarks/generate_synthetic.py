"""Seconds to generate each embedded dataset from scratch, on all cores.

    .venv/bin/python benchmarks/generate_synthetic.py [--scales tiny default]

Targets (issue #2): synthetic ImageNet `default` under 60 s and `tiny` in a few seconds on 2 cores.
WordNet and the per-class looks are loaded before the clock starts for the datasets; the first
line reports that set-up separately.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from synthetic import imagenet, sun397, voc

DATASETS = {"imagenet": imagenet, "voc": voc, "sun397": sun397}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scales", nargs="+", default=["tiny", "default"])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    args = parser.parse_args()
    start = time.perf_counter()
    imagenet.look_of(imagenet.synset_of(imagenet.imagenet1k_wnids()[0]))  # loads WordNet
    print(f"WordNet load: {time.perf_counter() - start:.1f} s")
    print(f"cores: {os.cpu_count()}")
    for scale in args.scales:
        for name in args.datasets:
            module = DATASETS[name]
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                facts = module.generate(Path(tmp) / "out", module.SCALES[scale], seed=0)
                seconds = time.perf_counter() - start
            images = sum(v for k, v in facts.items() if k.endswith("images"))
            print(f"{name:9s} {scale:8s} {images:7d} images  {seconds:6.1f} s  {images / seconds:7.0f} images/s")


if __name__ == "__main__":
    main()

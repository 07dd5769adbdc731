"""Generate the synthetic datasets (they are also generated on first use).

    python -m synthetic generate [--scale tiny|default] [--seed 0] [--datasets imagenet voc sun397 cifar10 ...]
"""

import argparse
import importlib

from formats.cache import data_dir
from synthetic import GENERATORS, imagenet


def main(argv=None) -> None:
    # The command sits above every layer: the twins that task files register (Food-101, CIFAR, ...) are generators
    # once the tasks package has registered them.
    importlib.import_module("tasks").TASKS.names()
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="generate synthetic datasets")
    generate.add_argument("--scale", default="default", choices=sorted(imagenet.SCALES))
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--datasets", nargs="+", default=GENERATORS.names(), choices=GENERATORS.names())
    generate.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    print(f"data directory: {data_dir()}  (set TRANSFER_DATA_DIR to move it)")
    for name in args.datasets:
        print(GENERATORS[name](args.scale, args.seed, args.workers))


if __name__ == "__main__":
    main()

"""Generate the embedded datasets (they are also generated on first use).

    python -m embedded generate [--scale tiny|default] [--seed 0] [--datasets imagenet voc sun397]
    python -m embedded wordnet          # lay out WordNet 3.0 as an NLTK corpus (set-up does this)
"""

import argparse

from embedded import data_dir, imagenet, wordnet
from embedded.sources import GENERATORS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m embedded", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="generate synthetic datasets")
    generate.add_argument("--scale", default="default", choices=sorted(imagenet.SCALES))
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--datasets", nargs="+", default=list(GENERATORS), choices=list(GENERATORS))
    generate.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    commands.add_parser("wordnet", help="install WordNet 3.0 as an NLTK corpus")
    args = parser.parse_args(argv)
    print(f"data directory: {data_dir()}  (set TRANSFER_DATA_DIR to move it)")
    if args.command == "wordnet":
        print(wordnet.install())
        return
    for name in args.datasets:
        print(GENERATORS[name](args.scale, args.seed, args.workers))


if __name__ == "__main__":
    main()

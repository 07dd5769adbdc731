"""Where a dataset comes from: ``embedded:<scale>`` (generated here on first use, the same on
every node) or the path of the real dataset. Resolved where the data is read, so that every node
of a cluster finds its own copy."""

from pathlib import Path

from embedded import imagenet, sun397, voc

GENERATORS = {"imagenet": imagenet.ensure, "voc": voc.ensure, "sun397": sun397.ensure}


def resolve(dataset: str, source: str) -> Path:
    if source.startswith("embedded:"):
        return GENERATORS[dataset](source.split(":", 1)[1])
    return Path(source).expanduser().resolve()

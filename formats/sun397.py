"""SUN397 in its release layout: ``<root>/<letter>/<scene>/*.jpg`` and the ten train/test partitions
(``Partitions/{ClassName,Training_NN,Testing_NN}.txt``, or the same files in ``<root>``)."""

from pathlib import Path

from formats import GENERATE_HINT, DataFormatError, require_file


def list_sun397(root: str | Path, split: str = "train", partition: int = 1) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(path relative to root, class index)], class names)`` of one of SUN397's ten
    train/test partitions; the partition files live in ``root/Partitions`` or ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"SUN397 root {root} does not exist. Point it at the SUN397 folder (with its "
            f"Partitions/ files), or {GENERATE_HINT}."
        )
    if split not in ("train", "test") or not 1 <= partition <= 10:
        raise ValueError(f"SUN397 split is 'train' or 'test' and partition 1..10, not {split!r}, {partition}")
    folder = root / "Partitions" if (root / "Partitions").is_dir() else root
    names = require_file(folder / "ClassName.txt", "SUN397 ClassName.txt").read_text().split()
    index = {name: i for i, name in enumerate(names)}
    listing = folder / f"{'Training' if split == 'train' else 'Testing'}_{partition:02d}.txt"
    samples = []
    for line in require_file(listing, "SUN397 partition file").read_text().split():
        scene = line.rsplit("/", 1)[0]
        if scene not in index:
            raise DataFormatError(f"{listing}: {line} is in no class of ClassName.txt")
        samples.append((line.lstrip("/"), index[scene]))
    return samples, [name.lstrip("/") for name in names]

"""SUN397 in its release layout: ``<root>/<letter>/<scene>/*.jpg`` and the ten train/test partitions
(``Partitions/{ClassName,Training_NN,Testing_NN}.txt``, or the same files in ``<root>``)."""

from collections.abc import Iterator
from pathlib import Path

from formats import GENERATE_HINT, DataFormatError, listed_images, read_lines, read_names


def list_sun397(root: str | Path, split: str = "train", partition: int = 1) -> tuple[list[tuple[str, int]], list[str]]:
    """``([(path relative to root, class index)], class names)`` of one of SUN397's ten
    train/test partitions; the partition files live in ``root/Partitions`` or ``root``. Errors name the file and
    line: a class or image listed twice, an image in no class or not on disk, a file that lists none."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(
            f"SUN397 root {root} does not exist. Point it at the SUN397 folder (with its "
            f"Partitions/ files), or {GENERATE_HINT}."
        )
    if split not in ("train", "test") or not 1 <= partition <= 10:
        raise ValueError(f"SUN397 split is 'train' or 'test' and partition 1..10, not {split!r}, {partition}")
    folder = root / "Partitions" if (root / "Partitions").is_dir() else root
    classes = read_names(folder / "ClassName.txt", "SUN397 ClassName.txt")  # like /a/abbey
    index = {name: i for i, name in enumerate(classes)}
    listing = folder / f"{'Training' if split == 'train' else 'Testing'}_{partition:02d}.txt"
    lines = read_lines(listing, "SUN397 partition file")
    paths, targets = listed_images(listing, _rows(listing, lines, index), root, "SUN397")
    return list(zip(paths, targets)), [name.lstrip("/") for name in classes]


def _rows(listing: Path, lines: list[tuple[int, str]], index: dict[str, int]) -> Iterator[tuple[int, str, str, int]]:
    for number, line in lines:
        scene = line.rsplit("/", 1)[0]
        if scene not in index:
            raise DataFormatError(f"{listing}:{number}: {line} is in no class of ClassName.txt")
        yield number, line, line.lstrip("/"), index[scene]

"""SUN397 in its release layout: ``<root>/<letter>/<scene>/*.jpg`` and the ten train/test partitions
(``Partitions/{ClassName,Training_NN,Testing_NN}.txt``, or the same files in ``<root>``)."""

from pathlib import Path

from formats import GENERATE_HINT, DataFormatError, read_lines


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
    index = _class_index(folder / "ClassName.txt")
    listing = folder / f"{'Training' if split == 'train' else 'Testing'}_{partition:02d}.txt"
    samples, first_seen = [], {}
    for number, line in read_lines(listing, "SUN397 partition file"):
        scene = line.rsplit("/", 1)[0]
        if scene not in index:
            raise DataFormatError(f"{listing}:{number}: {line} is in no class of ClassName.txt")
        if line in first_seen:
            raise DataFormatError(
                f"{listing}:{number}: {line} is listed again (first on line {first_seen[line]}); list each image once"
            )
        first_seen[line] = number
        path = line.lstrip("/")
        if not (root / path).is_file():
            raise DataFormatError(f"{listing}:{number}: the image {root / path} is missing; re-extract SUN397")
        samples.append((path, index[scene]))
    if not samples:
        raise DataFormatError(f"{listing} lists no images")
    return samples, [name.lstrip("/") for name in index]


def _class_index(class_file: Path) -> dict[str, int]:
    """Each class of ClassName.txt (like /a/abbey) and its index."""
    index = {}
    for number, name in read_lines(class_file, "SUN397 ClassName.txt"):
        if name in index:
            raise DataFormatError(f"{class_file}:{number}: class {name} is listed again; list each class once")
        index[name] = len(index)
    if not index:
        raise DataFormatError(f"{class_file} lists no classes")
    return index

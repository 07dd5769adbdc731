"""SUN397 scene classification: partition 1, train -> test, top-1 accuracy (Huh et al.'s SUN-CLS)."""

from pathlib import Path

from formats.sun397 import list_sun397
from tasks import Examples, Task, register
from tasks.metrics import top1


def read(root: Path, split: str, seed: int = 0) -> Examples:
    samples, classes = list_sun397(root, split, 1)
    return Examples(Path(root), [path for path, _ in samples], [label for _, label in samples], classes)


def check_layout(root: Path) -> None:
    """Reads both splits as the worker will, every listed image known to exist."""
    for split in ("train", "test"):
        list_sun397(root, split, 1)


register(
    Task(
        name="sun397",
        dataset="sun397",
        protocol="finetune",
        metric="top1",
        check_layout=check_layout,
        description="SUN397 scenes, partition 1, train -> test; top-1",
        read=read,
        evaluate=lambda scores, labels: {"top1": top1(scores, labels)},
    )
)

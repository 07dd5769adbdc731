"""PASCAL VOC 2012 action classification (Huh et al.'s PASCAL-ACT-CLS): the person boxes are given,
each person does one or more of 10 actions; train -> val, mean average precision over the actions."""

from pathlib import Path

from formats.voc import VOC_ACTIONS, list_voc_action, voc_crop
from tasks import Examples, Task, register
from tasks.metrics import mean_average_precision

ACTION_CONTEXT = 0.5  # person boxes grow by half their size on each side: the props are around them


def read(root: Path, split: str, seed: int = 0) -> Examples:
    people = list_voc_action(root, split)
    return Examples(
        root=Path("/"),
        paths=[str(person.image.path) for person in people],
        targets=[[float(action in person.actions) for action in VOC_ACTIONS] for person in people],
        classes=list(VOC_ACTIONS),
        crops=[voc_crop(person.box, ACTION_CONTEXT) for person in people],
    )


def check_layout(root: Path) -> None:
    """Reads every annotation of both splits, as the worker will: a malformed one is named before anything starts."""
    for split in ("train", "val"):
        list_voc_action(root, split)


def evaluate(scores, targets) -> dict:
    mean_ap, per_action = mean_average_precision(scores, targets)
    return {"map": mean_ap, **{f"ap_{action}": ap for action, ap in zip(VOC_ACTIONS, per_action)}}


register(
    Task(
        name="voc_action",
        dataset="voc",
        protocol="finetune",
        metric="map",
        check_layout=check_layout,
        description="VOC 2012 actions of the given person boxes, train -> val; mAP over the 10 actions",
        read=read,
        splits=("train", "val"),
        multilabel=True,
        evaluate=evaluate,
    )
)

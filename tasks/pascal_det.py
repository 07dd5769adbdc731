"""PASCAL VOC 2007 detection (Huh et al.'s PASCAL-DET): trainval -> test, Faster R-CNN on the pretrained
network through MMDetection (the ``detect`` protocol, trainers/detect.py); 11-point mAP over the 20 classes."""

from pathlib import Path

from formats.voc import list_voc_detection
from tasks import Task, register


def check_layout(root: Path) -> None:
    """Reads every annotation of both splits, as MMDetection will in the worker: a malformed one is named here,
    before anything starts (VOC 2007's 10k XML files take seconds)."""
    for split in ("trainval", "test"):
        list_voc_detection(root, split)


register(
    Task(
        name="pascal_det",
        dataset="voc",
        protocol="detect",
        metric="map",
        check_layout=check_layout,
        description="VOC 2007 detection, trainval -> test; 11-point mAP over the 20 classes",
        requires_model="alexnet",  # the detector is AlexNet's conv1-conv5 + fc6/fc7 (Fast R-CNN's recipe)
    )
)

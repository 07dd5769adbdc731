"""PASCAL VOC 2007 detection (Huh et al.'s PASCAL-DET): trainval -> test, Faster R-CNN on the pretrained
network through MMDetection (the ``detect`` protocol, trainers/detect.py); 11-point mAP over the 20 classes."""

from formats.voc import check_voc_splits
from tasks import Task, register

register(
    Task(
        name="pascal_det",
        dataset="voc",
        protocol="detect",
        metric="map",
        check_layout=lambda root: check_voc_splits(root, "2007", "Main", ("trainval", "test")),
        description="VOC 2007 detection, trainval -> test; 11-point mAP over the 20 classes",
        requires_model="alexnet",  # the detector is AlexNet's conv1-conv5 + fc6/fc7 (Fast R-CNN's recipe)
    )
)

"""The worker side: the loops that Ray Train workers run.

``pretrain`` trains a network on a subset's manifest. A transfer unit (a pretraining transferred to a
task with a seed and a recipe) is run by its task's protocol, looked up in ``PROTOCOLS``: ``finetune``
(trainers/finetune.py: the classifier replaced, every layer trained) and ``detect``
(trainers/detect.py: Faster R-CNN through MMDetection) and ``probe`` (trainers/probe.py: fixed features,
nearest neighbour and logistic regression). ``transfer`` runs a fine-tuning group's list
of units one after another in one worker group. A protocol is a function registered with
``@PROTOCOLS.register(name)`` that takes a ``Transfer`` and returns the unit's metrics.

Only workers import this package: it brings torch's training stack, Ray Train and MMDetection.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from formats.registry import Registry
from tasks import Task

PROTOCOLS = Registry("protocol", package="trainers")


@dataclass(frozen=True)
class Transfer:
    """One transfer unit as a protocol runs it, on every worker of the group."""

    unit_id: str
    task: Task
    seed: int
    recipe: dict  # the protocol's section of the run configuration
    data_root: Path  # the task's dataset
    pretrained_file: Path  # the pretraining's checkpoint (models.save_checkpoint)
    pretrained: Callable[[], nn.Module]  # a fresh copy of the pretrained network
    image_size: int  # the pretraining's input size
    loader_workers: int
    use_gpu: bool
    device: torch.device
    scratch: Path  # a folder of this worker's for the unit's files
    resume: dict | None  # the state this unit checkpointed last, when it was interrupted
    restored_file: Path | None  # the file it checkpointed with that state, copied back
    checkpoint: Callable[..., None]  # checkpoint(metrics, state, file=None): a Ray Train checkpoint of the unit
    stage: dict | None = None  # a search's part (orchestrator.stages): {"setting": ...} or {"refit": ...}

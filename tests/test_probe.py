"""The probe protocol (fixed features: nearest neighbour and logistic regression) on features whose answer is
known, and end to end on the tiny synthetic ImageNet's held-out halves."""

from pathlib import Path

import pytest
import torch

import synthetic
from models import create_model, load_checkpoint, save_checkpoint
from tasks import TASKS
from trainers import PROTOCOLS, Transfer
from trainers.probe import logistic_regression, nearest_neighbour


def clusters(per_class: int, classes: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around one direction per class (the directions of an identity matrix), ``spread`` apart."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.arange(classes).repeat_interleave(per_class)
    return torch.eye(classes)[targets] * 3 + spread * torch.randn(len(targets), classes, generator=generator), targets


def test_separable_features_are_classified_perfectly_and_noise_at_chance():
    train, train_targets = clusters(20, 10, spread=0.3, seed=0)
    test, test_targets = clusters(20, 10, spread=0.3, seed=1)
    assert torch.equal(nearest_neighbour(train, train_targets, test), test_targets)
    weight, bias = logistic_regression(train, train_targets, 10, l2=1e-4, iterations=200)
    assert torch.equal((test @ weight + bias).argmax(1), test_targets)
    noise = torch.randn(200, 10, generator=torch.Generator().manual_seed(2))
    weight, bias = logistic_regression(noise, train_targets, 10, l2=1e-4, iterations=200)
    other_noise = torch.randn(200, 10, generator=torch.Generator().manual_seed(3))
    assert ((other_noise @ weight + bias).argmax(1) == test_targets).float().mean() < 0.25  # chance: 0.1


def test_a_larger_penalty_shrinks_the_weights():
    train, targets = clusters(20, 5, spread=1.0, seed=0)
    loose, _ = logistic_regression(train, targets, 5, l2=1e-6, iterations=200)
    tight, _ = logistic_regression(train, targets, 5, l2=1.0, iterations=200)
    assert tight.norm() < loose.norm() / 3


@pytest.mark.parametrize("task", ["imagenet_fine", "imagenet_coarse"])
def test_probe_on_the_held_out_halves_of_the_tiny_imagenet(task, tmp_path):
    torch.manual_seed(0)
    checkpoint = tmp_path / "model.pt"
    save_checkpoint(checkpoint, create_model("alexnet", 10, {"variant": "small", "width": 0.125}))
    transfer = Transfer(
        unit_id="u", task=TASKS[task], seed=0, recipe={"batch_size": 256, "l2": 1e-4, "iterations": 50},
        data_root=synthetic.resolve("imagenet", "embedded:tiny"), pretrained_file=checkpoint,
        pretrained=lambda: load_checkpoint(checkpoint)[0], image_size=32, loader_workers=0, use_gpu=False,
        device=torch.device("cpu"), scratch=Path(tmp_path), resume=None, restored_file=None, checkpoint=None,
    )  # fmt: skip
    result = PROTOCOLS["probe"](transfer)
    classes = 1000 if task == "imagenet_fine" else 127
    assert result["classes"] == classes and result["train_images"] == result["test_images"] == 1000
    assert 0 <= result["nn_top1"] <= 1 and 0 <= result["top1"] <= 1
    assert result["feature_dim"] == 512  # fc7 at width 1/8

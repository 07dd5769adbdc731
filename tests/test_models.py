"""The project's AlexNet: torchvision's at width 1, a small-input variant, timm's interface, and checkpoints
(the registry-driven tests in test_registries.py build, run and round-trip every model)."""

import pytest
import torch
import torchvision

from models import create_model, load_checkpoint, save_checkpoint
from models.alexnet import AlexNet, AlexNetConfig


def test_imagenet_variant_matches_torchvision_alexnet():
    ours = AlexNet(1000).state_dict()
    theirs = torchvision.models.alexnet(weights=None).state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    model = AlexNet(1000)
    model.load_state_dict(theirs)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


@pytest.mark.parametrize("size, trunk_size", [(32, 7), (64, 15)])  # two 3x3/2 max-pools: stride ~4
def test_small_variant_on_embedded_sizes(size, trunk_size):
    model = AlexNet(10, AlexNetConfig("small", width=0.25))
    images = torch.zeros(2, 3, size, size)
    assert model(images).shape == (2, 10)
    assert model.trunk(images).shape[-1] == trunk_size
    assert model.forward_head(model.forward_features(images), pre_logits=True).shape == (2, 1024)


def test_imagenet_trunk_has_stride_16():
    assert AlexNet(5, AlexNetConfig(width=0.25)).trunk(torch.zeros(1, 3, 224, 224)).shape[-2:] == (13, 13)


def test_checkpoint_round_trip_and_fc8_replacement(tmp_path):
    model = create_model("alexnet", 7, {"variant": "small", "width": 0.125})
    save_checkpoint(tmp_path / "model.pt", model, {"epoch": 3})
    loaded, state = load_checkpoint(tmp_path / "model.pt")
    assert state["epoch"] == 3 and loaded.config == model.config
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    loaded.reset_classifier(20)
    assert loaded(torch.zeros(1, 3, 32, 32)).shape == (1, 20)
    assert not list(tmp_path.glob(".*tmp"))


def test_bad_config():
    with pytest.raises(ValueError, match="variant"):
        AlexNetConfig("tiny")


def test_checkpoints_written_before_model_specs_still_load(tmp_path):
    """Pretrainings saved an ``alexnet`` section and ``num_classes`` before models had a registry."""
    model = AlexNet(7, AlexNetConfig("small", width=0.125, dropout=0.0))
    legacy = {"model": model.state_dict(), "alexnet": {"variant": "small", "width": 0.125, "dropout": 0.0},
              "num_classes": 7, "pretrain": {"epochs": 1}}  # fmt: skip
    torch.save(legacy, tmp_path / "model.pt")
    loaded, state = load_checkpoint(tmp_path / "model.pt")
    assert loaded.config == model.config and state["pretrain"] == {"epochs": 1}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))

"""Published ImageNet weights as a pretraining (models/published.py): found in a folder or in timm's own cache,
never downloaded here; absent, truncated or foreign weights are errors that name the file, before any worker starts."""

import hashlib
import os

import pytest
import torch
from safetensors.torch import save_file

from models import create_model
from models.published import WeightsError, check_weights, fetch, load_published, weights_file
from orchestrator.config import ConfigError, load

MODEL, TAG = "resnet10t", "c3_in1k"


def write_weights(folder, model=MODEL, tag=TAG, seed=0):
    torch.manual_seed(seed)
    network = create_model(model, 1000)
    path = weights_file(folder, model, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: value.contiguous() for key, value in network.state_dict().items()}, str(path))
    return network, path


def test_weights_from_a_folder_load_exactly(tmp_path):
    network, _ = write_weights(tmp_path)
    loaded = load_published(MODEL, TAG, tmp_path)
    assert loaded.spec == {"name": f"{MODEL}.{TAG}", "args": {}}
    images = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded.eval()(images), network.eval()(images))


@pytest.mark.parametrize("damage, message", [
    ("absent", "fetch them on a machine that reaches the model hub (python -m models.published fetch resnet10t.c3_in1k"),
    ("truncated", "truncated or corrupt"),
    ("foreign", "holds weights of another network than resnet10t"),
])  # fmt: skip
def test_bad_weights_are_named_before_anything_runs(tmp_path, damage, message):
    if damage == "foreign":  # resnet18's weights under resnet10t's name
        _, other = write_weights(tmp_path, "resnet18", "tv_in1k")
        other.rename(weights_file(tmp_path, MODEL, TAG))
    elif damage == "truncated":
        _, path = write_weights(tmp_path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match=message.replace("(", r"\(").replace(".", r"\.")) as error:
        check_weights(MODEL, TAG, tmp_path)
    assert str(weights_file(tmp_path, MODEL, TAG)) in str(error.value)
    with pytest.raises(ConfigError, match="grid kornblith_fixed: "):  # the run's configuration is checked as it loads
        load(["grid=kornblith_fixed", f"published_weights={tmp_path}", "grid.tasks=[food101]",
              f"grid.points=[{{model: {MODEL}, weights: {TAG}}}]"])  # fmt: skip


def test_an_unknown_tag_lists_the_models_tags():
    with pytest.raises(WeightsError, match="timm publishes no weights resnet10t.nope; tags of resnet10t: c3_in1k"):
        check_weights(MODEL, "nope", None)


def test_a_point_with_weights_takes_no_subset():
    with pytest.raises(ConfigError, match="a point with published weights has no pretraining; leave out budget"):
        load(["grid=kornblith_fixed", "grid.tasks=[food101]",
              f"grid.points=[{{model: {MODEL}, weights: {TAG}, budget: 10}}]"])  # fmt: skip


def test_fetch_and_timms_cache_read_offline(tmp_path, monkeypatch):
    """timm's cache, laid out as the hub client leaves it, serves ``fetch`` and a run without a folder, offline."""
    network, source = write_weights(tmp_path / "made")
    revision = hashlib.sha1(b"test").hexdigest()
    repo = tmp_path / "hf" / "hub" / f"models--timm--{MODEL}.{TAG}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    (repo / "snapshots" / revision).mkdir(parents=True)
    source.rename(repo / "snapshots" / revision / "model.safetensors")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants  # the hub client reads its cache folder once, on import

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    images = torch.randn(2, 3, 64, 64)
    cached = load_published(MODEL, TAG, None)
    assert torch.equal(cached.eval()(images), network.eval()(images))
    [written] = fetch([f"{MODEL}.{TAG}"], tmp_path / "weights")
    assert written == weights_file(tmp_path / "weights", MODEL, TAG) and not any(
        name.startswith(".") for name in os.listdir(tmp_path / "weights"))  # fmt: skip
    assert torch.equal(load_published(MODEL, TAG, tmp_path / "weights").eval()(images), network.eval()(images))

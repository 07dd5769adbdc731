"""The finetune_search and scratch_search protocols (Kornblith et al.'s hyper-parameter grids): the grids as
published, the batch-norm momentum rule, and a search on a tiny synthetic task whose answer is known, its settings and
refit run as the sweep's jobs, a setting resumed after an interruption to the same result."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

import synthetic
from models import create_model, load_checkpoint, save_checkpoint
from orchestrator.config import load
from orchestrator.cost import search_settings
from tasks import TASKS
from trainers import PROTOCOLS, Transfer
from trainers.search import batch_norm_momentum, choose


def test_the_papers_grids():
    config = load(["scale=paper"])
    finetune = search_settings(dict(config.finetune_search))
    assert len(finetune) == 7 * 8
    assert sorted({s["lr"] for s in finetune}) == pytest.approx(np.logspace(-4, -1, 7))
    assert sorted({s["weight_decay"] for s in finetune}) == pytest.approx([0, *np.logspace(-6, -3, 7)])
    scratch = search_settings(dict(config.scratch_search))
    assert len(scratch) == 7 * 8 and 0 not in {s["weight_decay"] for s in scratch}
    assert sorted({s["lr"] for s in scratch}) == pytest.approx(np.logspace(-3, 0, 7))
    assert sorted({s["weight_decay"] for s in scratch}) == pytest.approx(np.logspace(-5, -1.5, 8))
    assert config.finetune_search.steps == 20000 and config.scratch_search.steps == 40000


def test_batch_norm_momentum_is_the_papers_decay_in_pytorchs_terms():
    assert batch_norm_momentum(50) == pytest.approx(0.1)  # 1 - 10/50 = 0.8 < 0.9: the decay is 0.9
    assert batch_norm_momentum(200) == pytest.approx(0.05)  # decay 1 - 10/200 = 0.95


def test_the_best_setting_is_chosen_and_a_diverged_one_never():
    assert choose([0.2, 0.5, float("nan"), 0.5]) == 1
    with pytest.raises(ValueError, match="every hyper-parameter setting diverged"):
        choose([float("nan")] * 2)


class Interrupted(Exception):
    pass


def transfer_of(tmp_path: Path, recipe: dict, stage: dict, resume=None, on_checkpoint=None) -> Transfer:
    checkpoint = tmp_path / "model.pt"
    if not checkpoint.exists():
        torch.manual_seed(0)
        save_checkpoint(checkpoint, create_model("alexnet", 10, {"variant": "small", "width": 0.25,
                                                                 "batch_norm": True, "dropout": 0.0}))  # fmt: skip
    return Transfer(
        unit_id="u", task=TASKS["food101"], seed=0, recipe=recipe,
        data_root=synthetic.resolve("food101", "embedded:default"), pretrained_file=checkpoint,
        pretrained=lambda: load_checkpoint(checkpoint)[0], image_size=32, loader_workers=0, use_gpu=False,
        device=torch.device("cpu"), scratch=tmp_path, resume=resume, restored_file=None,
        checkpoint=on_checkpoint or (lambda metrics, state, file=None: None), stage=stage,
    )  # fmt: skip


@pytest.mark.parametrize("protocol", ["finetune_search", "scratch_search"])
def test_a_search_chooses_the_setting_that_learns_and_a_setting_resumes_to_the_same_result(tmp_path, protocol):
    # A learning rate of 1e-7 learns nothing in 30 steps; 0.05 does: the refit must choose it.
    recipe = {"steps": 30, "batch_size": 32, "momentum": 0.9, "lr_min": 1e-7, "lr_max": 0.05, "lr_count": 2,
              "weight_decay_min": 1e-5, "weight_decay_max": 1e-5, "weight_decay_count": 1,
              "weight_decay_zero": False, "checkpoint_steps": 10, "crop_pct": 0.875}  # fmt: skip
    grid = search_settings(recipe)
    low, high = (PROTOCOLS[protocol](transfer_of(tmp_path, recipe, {"setting": setting, "search_of": "u"}))
                 for setting in grid)  # fmt: skip
    assert low["metric"] == "val_top1" and low["search_of"] == "u" and low["lr"] == pytest.approx(1e-7)
    assert high["val_top1"] > low["val_top1"] + 0.1
    train = len(TASKS["food101"].read(synthetic.resolve("food101", "embedded:default"), "train").paths)
    assert high["train_images"] + high["val_images"] == train

    scores = [low["val_top1"], high["val_top1"]]
    refit = PROTOCOLS[protocol](transfer_of(tmp_path, recipe, {"refit": {"settings": grid, "scores": scores}}))
    assert refit["lr"] == pytest.approx(0.05) and refit["weight_decay"] == pytest.approx(1e-5)
    assert refit["val_top1"] == high["val_top1"] and refit["search"] == {"settings": grid, "val_top1": scores}
    assert refit["train_images"] == train and refit["top1"] > 1.5 / 20  # 20 dishes: chance is 0.05

    states = []

    def interrupt(metrics, state, file=None):
        states.append(state)
        raise Interrupted

    setting = {"setting": grid[1], "search_of": "u"}
    with pytest.raises(Interrupted):
        PROTOCOLS[protocol](transfer_of(tmp_path, recipe, setting, on_checkpoint=interrupt))
    assert states[-1]["training"]["step"] == 10
    resumed = PROTOCOLS[protocol](transfer_of(tmp_path, recipe, setting, resume=states[-1]))
    assert resumed["val_top1"] == high["val_top1"]


@pytest.mark.timeout(300)
def test_a_training_split_smaller_than_a_batch_trains_on_all_of_it_every_step(tmp_path):
    """The paper's batch of 256 against the tiny synthetic Food-101's few dozen training images: every step is the
    whole split (an epoch of no whole batch would never reach the steps)."""
    recipe = {"steps": 3, "batch_size": 256, "momentum": 0.9, "lr_min": 0.01, "lr_max": 0.01, "lr_count": 1,
              "weight_decay_min": 1e-5, "weight_decay_max": 1e-5, "weight_decay_count": 0,
              "weight_decay_zero": True, "checkpoint_steps": 2, "crop_pct": 0.875}  # fmt: skip
    transfer = transfer_of(tmp_path, recipe, {"setting": search_settings(recipe)[0], "search_of": "u"})
    transfer = dataclasses.replace(transfer, data_root=synthetic.resolve("food101", "embedded:tiny"))
    result = PROTOCOLS["finetune_search"](transfer)
    assert result["train_images"] < 256 and result["steps"] == 3 and 0 <= result["val_top1"] <= 1

"""The cost a dry run prints before launch (orchestrator/cost.py): the plan's images over the measured throughput
of orchestrator/throughput.yaml, counted here by hand; what it cannot cost is named; bad cost settings are errors."""

import re

import pytest

import synthetic
from orchestrator.config import ConfigError, load
from orchestrator.cost import estimate, throughput
from orchestrator.plan import make_plan
from orchestrator.run import main
from tasks import TASKS

TINY = ["data.sun397=embedded:tiny", "data.voc=embedded:tiny", "data.imagenet=embedded:tiny"]


def rate(kind: str, part: str, **fields) -> float:
    (row,) = [r for r in throughput()["cpu"][part] if all(r.get(k) == v for k, v in fields.items())]
    return row[kind]


def hours(line: str) -> dict[str, float]:
    found = dict(re.findall(r"(pretraining|fine-tuning|detection) ([0-9.]+)", line))
    return {name: float(value) for name, value in found.items()} | {
        "total": float(re.search(r"([0-9.]+) device-hours", line).group(1))
    }


def test_the_embedded_grid_costs_its_images_over_the_measured_rates():
    config = load(
        ["grid=classes_vs_examples", *TINY, "grid.tasks=[sun397,voc_action,pascal_det]", "cost.price_per_hour=2"]
    )
    plan = make_plan(config)
    small = rate("images_per_s", "classify", image_size=32)
    train = {task: len(TASKS[task].read(synthetic.resolve(TASKS[task].dataset, "embedded:tiny"), "train", seed=0).paths)
             for task in ("sun397", "voc_action")}  # fmt: skip
    pretraining = sum(p.subset.budget * p.recipe["epochs"] for p in plan.pretrainings) / small
    finetuning = 4 * 2 * sum(train.values()) * config.finetune.epochs / small  # 4 pretrainings x 2 seeds
    detection = (
        4 * 2 * config.detect.iterations * config.detect.batch_size / rate("images_per_s", "detect", image_scale=84)
    )
    line = estimate(plan, config, set())
    expected = {"pretraining": pretraining, "fine-tuning": finetuning, "detection": detection}
    for name, seconds in expected.items():
        assert hours(line)[name] == pytest.approx(seconds / 3600, abs=0.006)
    total = sum(expected.values()) / 3600
    assert hours(line)["total"] == pytest.approx(total, abs=0.006)
    assert f"{total * 2:,.2f} at 2 per device-hour" in line and "not costed" not in line


def test_finished_units_cost_nothing():
    config = load(["grid=classes_vs_examples", *TINY])
    plan = make_plan(config)
    done = {u.unit_id for u in plan.pretrainings} | {u.unit_id for u in plan.finetunings}
    assert hours(estimate(plan, config, done))["total"] == 0


def test_what_has_no_measured_rate_or_no_data_here_is_named(tmp_path):
    config = load(["grid=classes_vs_examples", *TINY, "model=resnet18", f"data.sun397={tmp_path / 'absent'}"])
    line = estimate(make_plan(config), config, set())
    assert "not costed: 20 unit(s), such as pretraining" in line and "(no measured rate)" in line
    config = load(["grid=classes_vs_examples", *TINY, f"data.sun397={tmp_path / 'absent'}"])
    assert "(its images are not counted here)" in estimate(make_plan(config), config, set())


def test_a_gpu_run_names_its_gpu_and_bad_cost_settings_are_errors(capsys, tmp_path):
    assert main(["dry_run=true", *TINY, "resources.use_gpu=true", f"storage={tmp_path}"]) == 0
    assert "cost: name the GPU to cost the plan on, cost.device=" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="cost.device='h100' has no measured throughput.*cpu"):
        load(["cost.device=h100"])
    with pytest.raises(ConfigError, match="cost.price_per_hour"):
        load(["cost.price_per_hour=-1"])

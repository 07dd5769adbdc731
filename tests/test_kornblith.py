"""Kornblith et al. (2019) end to end: kornblith2019's three experiments on the tiny synthetic data, through the same
code as a real run (Ray Tune trials, Ray Train worker groups, the store, the report), with a held-out validation
split (Oxford-IIIT Pets, mean per-class accuracy) and an official one (VOC 2007, multi-label, 11-point mAP). Slow:
four networks are pretrained and each transferred six ways."""

import json

import pytest
from conftest import LOCAL_RAY
from test_sweep import TINY, rows, sweep

from orchestrator.config import load
from orchestrator.cost import search_settings
from orchestrator.plan import make_plan
from trainers.fixed_features import penalties

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LOCAL_RAY)]
TASKS = ["pets", "voc07_cls"]


@pytest.mark.timeout(1800)
def test_kornblith2019_runs_its_three_protocols_on_shared_networks_and_reports_them(tmp_path):
    overrides = [*TINY, "grid=kornblith2019", f"grid.tasks=[{','.join(TASKS)}]"]
    config = load(overrides)
    plan = make_plan(config)
    result = sweep(*overrides, f"storage={tmp_path}", "run=k", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = rows(tmp_path / "k" / "results")
    assert all(r["status"] == "ok" for r in found)
    networks = [r for r in found if r["kind"] == "pretrain"]
    # The four networks are pretrained once for the three experiments.
    assert sorted(r["model"] for r in networks) == sorted(["alexnet", "resnet10t", "mobilenetv3_small_050",
                                                           "mobilenetv2_050"])  # fmt: skip
    assert {r["unit_id"] for r in networks} == {p.unit_id for p in plan.pretrainings}
    transfers = [r for r in found if r["kind"] == "finetune"]
    assert len(transfers) == 4 * len(TASKS) * 3
    # Each search's settings have rows of their own: 2 x 2 at the embedded scale.
    assert len([r for r in found if r["kind"] == "search"]) == 4 * len(TASKS) * 2 * 4
    assert sorted({(r["protocol"], r["task"]) for r in transfers}) == sorted(
        (protocol, task) for protocol in ("fixed_features", "finetune_search", "scratch_search") for task in TASKS)
    for row in transfers:
        metrics = json.loads(row["metrics"])
        primary = "map" if row["task"] == "voc07_cls" else "mean_per_class"
        assert row["metric"] == f"{row['task']}_{primary}" and row["value"] == metrics[primary]
        assert 0 <= row["value"] <= 1 and metrics["val_images"] > 0
        assert metrics[f"val_{primary}"] == max(v for v in metrics["search"][f"val_{primary}"] if v == v)
        if row["protocol"] == "fixed_features":
            assert metrics["search"]["l2"] == list(penalties(dict(config.fixed_features)))
            assert metrics["l2"] in metrics["search"]["l2"]
        else:
            grid = search_settings(dict(config[row["protocol"]]))
            assert metrics["search"]["settings"] == grid and {"lr": metrics["lr"],
                                                              "weight_decay": metrics["weight_decay"]} in grid
    report = (tmp_path / "k" / "report" / "report.md").read_text()
    for experiment in ("kornblith_fixed", "kornblith_finetune", "kornblith_scratch"):
        assert f"## {experiment}: " in report
    assert "0.99" in report and "0.96" in report  # the paper's r beside the run's
    assert "fine-tuned − from scratch" in report

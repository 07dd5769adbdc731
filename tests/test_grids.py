"""Every grid end to end on the tiny synthetic data, through the same code as a real run: its label sets, tasks
and seeds, at tiny sizes (at most 2 images per class, one epoch, a few detector iterations). Slow: each grid
starts several Ray Train worker groups (`pytest -m slow`)."""

import json

import pytest
from test_sweep import TINY, rows, sweep

from orchestrator.config import available, grid_points, grid_tasks, load
from orchestrator.plan import make_plan

pytestmark = pytest.mark.slow


def tiny_points(grid: str) -> str:
    """The grid's points at tiny sizes, as a grid.points override."""
    points = []
    for point in grid_points(load([f"grid={grid}"])):
        size = "budget:300" if point["budget"] else "images_per_class:2"
        points.append(f"{{label_set:{point['label_set']},{size},model:{point['model']['name']}}}")
    return f"grid.points=[{','.join(points)}]"


@pytest.mark.parametrize("grid", available("grid"))
def test_every_grid_runs_on_the_tiny_synthetic_data(grid, tmp_path):
    config = load([f"grid={grid}"])
    tasks = grid_tasks(config)
    recipe = [override for override in TINY if not override.startswith("grid.")]  # the grid's own points follow
    overrides = [*recipe, f"grid={grid}", tiny_points(grid), "~grid.seeds", "+grid.seeds=[0]"]
    plan = make_plan(load(overrides))  # at tiny sizes some points coincide, and are one pretraining
    result = sweep(*overrides, f"storage={tmp_path}", "run=tiny", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = rows(tmp_path / "tiny" / "results")
    pretrainings = [r for r in found if r["kind"] == "pretrain"]
    assert {r["unit_id"] for r in pretrainings} == {p.unit_id for p in plan.pretrainings}
    assert len(found) == len(pretrainings) * (1 + len(tasks))  # one seed each here
    assert all(r["status"] == "ok" and r["grid"] == grid for r in found)
    assert {r["label_set"] for r in pretrainings} == {p["label_set"] for p in grid_points(config)}
    assert {r["task"] for r in found if r["kind"] == "finetune"} == set(tasks)
    assert all(json.loads(r["config"])["grid"]["name"] == grid for r in found)

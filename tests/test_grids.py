"""Every grid end to end on the tiny synthetic data, through the same code as a real run: its label sets, tasks
and seeds, at tiny sizes (at most 2 images per class, one epoch, a few detector iterations). Slow: each grid
starts several Ray Train worker groups (`pytest -m slow`)."""

import json

import pytest
from test_sweep import TINY, rows, sweep

from orchestrator.config import available, grid_points, grid_seeds, grid_tasks, load

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
    tasks, seeds = grid_tasks(config), grid_seeds(config)
    recipe = [override for override in TINY if not override.startswith("grid.")]  # the grid's own points follow
    result = sweep(*recipe, f"grid={grid}", tiny_points(grid), "~grid.seeds", "+grid.seeds=[0]", f"storage={tmp_path}", "run=tiny",
                   timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = rows(tmp_path / "tiny" / "results")
    pretrainings = [r for r in found if r["kind"] == "pretrain"]
    assert len(pretrainings) == len(grid_points(config)) and len(seeds) >= 1
    assert len(found) == len(pretrainings) * (1 + len(tasks))  # one seed each here
    assert all(r["status"] == "ok" and r["grid"] == grid for r in found)
    assert {r["label_set"] for r in pretrainings} == {p["label_set"] for p in grid_points(config)}
    assert {r["task"] for r in found if r["kind"] == "finetune"} == set(tasks)
    assert all(json.loads(r["config"])["grid"]["name"] == grid for r in found)

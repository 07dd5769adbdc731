"""Every grid end to end on the tiny synthetic data, through the same code as a real run: its label sets, tasks
and seeds, at tiny sizes (at most 2 images per class, one epoch, a few detector iterations), and its report; and
a union of two grids, whose shared pretraining runs once and shows in both experiments' tables. Slow: each grid
starts several Ray Train worker groups (`pytest -m slow`)."""

import json

import pytest
from conftest import LOCAL_RAY
from test_sweep import TINY, rows, sweep

from orchestrator.config import available, experiments, grid_points, grid_tasks, load
from orchestrator.cost import SEARCH_PROTOCOLS, search_settings
from orchestrator.plan import make_plan

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LOCAL_RAY)]


def tiny_points(grid: str) -> str:
    """The grid's points at tiny sizes, as a grid.points override."""
    points = []
    for point in grid_points(load([f"grid={grid}"])):
        size = "budget:300" if point["budget"] else "images_per_class:2"
        points.append(f"{{label_set:{point['label_set']},{size},model:{point['model']['name']}}}")
    return f"grid.points=[{','.join(points)}]"


UNIONS = [grid for grid in available("grid") if len(experiments(load([f"grid={grid}"]))) > 1]


@pytest.mark.parametrize("grid", [grid for grid in available("grid") if grid not in UNIONS])
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
    settings = [r for r in found if r["kind"] == "search"]  # a search's settings, in the Kornblith grids
    searches = [u for u in plan.finetunings if u.protocol in SEARCH_PROTOCOLS]
    assert len(settings) == sum(len(search_settings(u.recipe)) for u in searches)
    assert len(found) - len(settings) == len(pretrainings) * (1 + len(tasks))  # one seed each here
    assert all(r["status"] == "ok" and r["grid"] == grid for r in found)
    assert {r["label_set"] for r in pretrainings} == {p["label_set"] for p in grid_points(config)}
    assert {r["task"] for r in found if r["kind"] == "finetune"} == set(tasks)
    assert all(json.loads(r["config"])["grid"]["name"] == grid for r in found)
    report = (tmp_path / "tiny" / "report" / "report.md").read_text()
    assert f"## {grid}: " in report and f"{len(found) - len(settings)} finished, 0 failed, 0 not run" in report


@pytest.mark.timeout(1800)  # six pretrainings and their fine-tunings: about 6 minutes alone on 2 cores
@pytest.mark.parametrize("union", UNIONS)
def test_a_union_runs_its_shared_pretraining_once(union, tmp_path):
    members = "[pascal_removed,class_splits]"  # both hold all 1000 classes, here at 2 images each
    recipe = [override for override in TINY if not override.startswith("grid.")]
    overrides = [*recipe, f"grid={union}", f"grid.grids={members}", "grid.images_per_class=2", "grid.tasks=[sun397]",
                 "grid.seeds=[0]"]  # fmt: skip
    plan = make_plan(load(overrides))
    assert len(plan.pretrainings) == 2 + 5 - 1 and len(plan.finetunings) == len(plan.pretrainings)
    result = sweep(*overrides, f"storage={tmp_path}", "run=union", timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = rows(tmp_path / "union" / "results")
    assert sorted(r["unit_id"] for r in found) == sorted(u.unit_id for u in [*plan.pretrainings, *plan.finetunings])
    fine = next(r for r in found if r["kind"] == "pretrain" and r["label_set"] == "fine")
    report = (tmp_path / "union" / "report" / "report.md").read_text()
    assert report.count(f"| fine (1000 labels, 2/class) | {100 * fine['value']:.1f} (n=1) |") == 2
    assert "## pascal_removed: " in report and "## class_splits: " in report


"""What each grid of the first paper plans at scale=paper: its pretrainings and fine-tunings, counted by hand from
the paper (every grid transfers to SUN397, VOC action and VOC detection, 3 seeds each), and the union grid
huh2016 running every pretraining and fine-tuning that several experiments share once."""

import pytest

from orchestrator.config import ConfigError, grid_findings, load
from orchestrator.plan import describe, make_plan

TARGETS = 3 * 3  # sun397, voc_action, pascal_det x 3 seeds
PAPER = {  # grid: (pretrainings, fine-tunings)
    "images_per_class": (5, 5 * TARGETS),  # 50, 125, 250, 500, all
    "num_classes": (6, 6 * TARGETS),  # 1000, 918, 753, 486, 79, 9
    "coarse_vs_fine": (2, 2 * (TARGETS + 2 * 3)),  # and the two induction probes
    "classes_vs_examples": (4, 4 * TARGETS),
    "pascal_removed": (2, 2 * TARGETS),
    "class_splits": (5, 5 * TARGETS),
    "extra_data": (3, 3 * TARGETS),
}


@pytest.mark.parametrize("grid", PAPER)
def test_each_grid_plans_the_paper_s_units(grid):
    plan = make_plan(load([f"grid={grid}", "scale=paper"]))
    assert (len(plan.pretrainings), len(plan.finetunings)) == PAPER[grid]
    (experiment,) = plan.experiments
    assert experiment.name == grid and {"sun397", "voc_action", "pascal_det"} <= set(experiment.tasks)
    assert experiment.seeds == [0, 1, 2]


def test_the_union_runs_each_shared_pretraining_and_fine_tuning_once():
    config = load(["grid=huh2016", "scale=paper"])
    plan = make_plan(config)
    assert [e.name for e in plan.experiments] == list(PAPER)
    # 1000 classes with every image is a point of six experiments; its 9 transfers (and the 6 induction probes
    # coarse_vs_fine adds) run once.
    shared = {p.unit_id for p in plan.pretrainings if p.subset.label_set == "fine" and not p.subset.images_per_class
              and not p.subset.budget}  # fmt: skip
    assert len(shared) == 1
    holding = [e.name for e in plan.experiments if any(shared & set(p["pretrainings"]) for p in e.points)]
    assert holding == [
        "images_per_class",
        "num_classes",
        "coarse_vs_fine",
        "pascal_removed",
        "class_splits",
        "extra_data",
    ]
    assert len(plan.pretrainings) == sum(p for p, _ in PAPER.values()) - 5
    assert len(plan.finetunings) == sum(f for _, f in PAPER.values()) - 5 * TARGETS
    assert len(plan.finetunings_of(next(iter(shared)))) == TARGETS + 2 * 3
    assert "5 of their pretrainings are shared and run once" in describe(plan, config, set())
    # Keys set on the union apply to every member.
    one_seed = make_plan(load(["grid=huh2016", "scale=paper", "grid.seeds=[0]", "grid.tasks=[sun397]"]))
    assert len(one_seed.finetunings) == len(plan.pretrainings) and len(one_seed.pretrainings) == len(plan.pretrainings)


def test_pretrain_seeds_repeat_each_point_and_the_report_keys_are_checked():
    plan = make_plan(load(["grid=images_per_class"]))  # embedded: every point pretrained with seeds 0 and 1
    assert len(plan.pretrainings) == 10
    assert all(len(point["pretrainings"]) == 2 for point in plan.experiments[0].points)
    seeds = sorted(p.subset.seed for p in plan.pretrainings if p.subset.images_per_class == 2)
    assert seeds == [0, 1]
    overridden = load(["grid=coarse_vs_fine", "grid.points=[{label_set:fine},{label_set:fine,pretrain:{lr:0.1}}]"])
    assert [(f["compare"], f["against"]) for f in grid_findings(overridden)] == [(None, None)]  # no single point
    assert "not judged here (coarse_vs_fine" in describe(make_plan(overridden), overridden, set())
    for overrides, message in [
        (["grid=images_per_class", "+grid.subset_seed=3"], "give subset_seed or grid.pretrain_seeds, not both"),
        (
            ["grid=coarse_vs_fine", "grid.findings.0.task=pascal_dte"],
            "unknown task 'pascal_dte'; did you mean pascal_det",
        ),
        (["grid=coarse_vs_fine", "+grid.findings.0.within=2"], "give one of above"),
        (["grid=images_per_class", "+grid.findings.1.against={images_per_class:all}"], "a trend finding compares no"),
        (["grid=images_per_class", "grid.findings.1.trend=classes"], "trend is images_per_class or labels"),
        (["grid=num_classes", "grid.figure.x=classes"], "grid.figure.x must be one of images_per_class, labels"),
        (["grid=huh2016", "grid.grids=[num_classes,nope]"], "unknown member grid 'nope'"),
        (["grid=huh2016", "grid.grids=[huh2016]"], "cannot be a member of huh2016"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load(overrides)

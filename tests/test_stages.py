"""The sweep's stages (orchestrator.stages) from a plan and the rows a store holds: grid points without their searches,
dealt into trials that stay the same over reruns, every search setting as a job of its own in slices that stay the same over reruns, and refits that read the settings'
scores or say which setting blocks them."""

import math

import pytest

from orchestrator.config import load
from orchestrator.cost import SEARCH_PROTOCOLS, search_settings
from orchestrator.plan import make_plan
from orchestrator.stages import SEARCH, point_trials, refit_trials, setting_id, setting_trials


@pytest.fixture(scope="module")
def plan():
    return make_plan(load(["grid=kornblith2019", "grid.tasks=[pets,dtd]"]))


def searches_of(plan):
    return [u for u in plan.finetunings if u.protocol in SEARCH_PROTOCOLS]


def ok(value=0.5):
    return {"status": "ok", "value": value, "error": None}


def jobs(trial):
    return [job for point in trial["points"] for job in point["finetunings"]]


def test_points_run_pretrainings_and_transfers_but_not_searches(plan):
    trials = point_trials(plan, set(), 1)
    assert len(trials) == len(plan.pretrainings) == 4
    assert [t["name"] for t in trials] == [f"point-{p.unit_id}" for p in plan.pretrainings]
    assert all({j["protocol"] for j in jobs(t)} == {"fixed_features"} for t in trials)
    assert all(j["kind"] == "finetune" and j["stage"] is None for t in trials for j in jobs(t))
    done = {p.unit_id for p in plan.pretrainings} | {u.unit_id for u in plan.finetunings if u.protocol == "fixed_features"}
    assert point_trials(plan, done, 1) == []  # the searches alone are left: no point trial


def test_points_are_dealt_in_turn_into_trials_that_stay_the_same_over_reruns(plan):
    ids = [p.unit_id for p in plan.pretrainings]
    trials = point_trials(plan, set(), 2)
    assert [[p["pretraining"]["unit_id"] for p in t["points"]] for t in trials] == [ids[0::2], ids[1::2]]
    assert all(t["name"].startswith("points-") for t in trials) and trials[0]["name"] != trials[1]["name"]
    assert [len(t["points"]) for t in point_trials(plan, set(), 3)] == [2, 2]  # two trials are needed: dealt alike
    assert len(point_trials(plan, set(), 4)) == 1
    first = {ids[0], *(j["unit_id"] for j in trials[0]["points"][0]["finetunings"])}
    assert point_trials(plan, first, 2) == trials  # a trial with a point left keeps its points, and so its name
    second = {ids[2], *(j["unit_id"] for j in trials[0]["points"][1]["finetunings"])}
    assert point_trials(plan, first | second, 2) == trials[1:]


def test_every_setting_is_a_job_and_its_slice_stays_the_same_over_reruns(plan):
    pretrained = {p.unit_id for p in plan.pretrainings}
    assert setting_trials(plan, set(), 1) == []  # no pretraining has its row yet
    trials = setting_trials(plan, pretrained, 1)
    searches = searches_of(plan)
    assert len(searches) == 4 * 2 * 2  # networks x tasks x (fine-tuned, from scratch)
    expected = {setting_id(u.unit_id, s) for u in searches for s in search_settings(u.recipe)}
    assert len(trials) == len(expected) == 16 * 4  # the embedded grid: 2 x 2 settings
    assert {jobs(t)[0]["unit_id"] for t in trials} == expected
    assert len({t["name"] for t in trials}) == len(trials)
    job = jobs(trials[0])[0]
    assert job["kind"] == SEARCH and job["stage"]["search_of"] in {u.unit_id for u in searches}
    assert job["stage"]["setting"] in search_settings(job["recipe"]) and job["blocked"] is None

    sliced = setting_trials(plan, pretrained, 3)
    assert [len(jobs(t)) for t in sliced] == [3, 3, 3, 3, 3, 1] * 4  # 16 jobs a pretraining, in threes
    first_done = {jobs(sliced[0])[0]["unit_id"]}
    rerun = setting_trials(plan, pretrained | first_done, 3)
    assert rerun == sliced  # a slice with a job left keeps its jobs, and so its name
    whole_slice = {j["unit_id"] for j in jobs(sliced[0])}
    assert setting_trials(plan, pretrained | whole_slice, 3) == sliced[1:]
    search = jobs(sliced[0])[0]["stage"]["search_of"]
    # A finished search's settings are not run again, whether or not they have rows.
    assert setting_trials(plan, pretrained | {search}, 3) == sliced[1:]


def test_a_refit_reads_its_settings_scores_in_order_and_a_failed_setting_blocks_it(plan):
    rows = {p.unit_id: ok() for p in plan.pretrainings}
    search = searches_of(plan)[0]
    grid = search_settings(search.recipe)
    scores = [0.1, float("nan"), 0.7, 0.3]
    rows |= {setting_id(u.unit_id, s): ok(v) for u in searches_of(plan) for s, v in zip(search_settings(u.recipe), scores)}
    trials = refit_trials(plan, rows, 1)
    assert len(trials) == 16
    job = next(j for t in trials for j in jobs(t) if j["unit_id"] == search.unit_id)
    assert job["kind"] == "finetune" and job["blocked"] is None and job["stage"]["refit"]["settings"] == grid
    assert job["stage"]["refit"]["scores"][::2] == [0.1, 0.7] and math.isnan(job["stage"]["refit"]["scores"][1])

    rows[setting_id(search.unit_id, grid[2])] = {"status": "failed", "value": None,
                                                 "error": "Traceback ...\nRuntimeError: CUDA out of memory\n"}  # fmt: skip
    job = next(j for t in refit_trials(plan, rows, 1) for j in jobs(t) if j["unit_id"] == search.unit_id)
    assert job["stage"]["refit"]["scores"] is None
    assert job["blocked"].startswith(f"setting 3 of the search (lr {grid[2]['lr']:g}, weight_decay")
    assert "failed: RuntimeError: CUDA out of memory. Rerun the command" in job["blocked"]
    del rows[setting_id(search.unit_id, grid[2])]
    job = next(j for t in refit_trials(plan, rows, 1) for j in jobs(t) if j["unit_id"] == search.unit_id)
    assert "has no result: its trial stopped before it ended" in job["blocked"]

    rows[search.unit_id] = ok()
    assert search.unit_id not in {j["unit_id"] for t in refit_trials(plan, rows, 1) for j in jobs(t)}

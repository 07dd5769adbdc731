"""The sweep's three stages, each a set of Ray Tune trials that starts once the stage before has ended
(orchestrator.run), and each trial the job lists of one or more grid points for orchestrator.trial.sweep_trial:

1. points: a pretraining (unless it has its row) and its transfers, the hyper-parameter searches excepted;
2. search settings: each setting of each search (protocols finetune_search and scratch_search) of a pretraining that
   has its row, trained on the task's train split and scored on its validation split: a row of kind "search";
3. refits: each search whose settings all have rows: the best setting trained on train+val and scored on test, the
   search unit's own row.

A trial of stage 1 runs ``resources.points_per_trial`` grid points one after another in one worker group: 1 (the
paper scale's) makes every point a trial of its own, placed anywhere on the cluster; more pay Ray Train's worker-group
start-up once for several points of minutes each (the embedded scale's ``auto``: as many as spread the points evenly
over the worker groups the cluster holds at once). A trial of stage 2 or 3 runs ``resources.settings_per_trial`` jobs
of one pretraining. At 1, every setting is a Tune trial of its own, which Ray places anywhere on the cluster, several
to a GPU when ``resources.gpus_per_worker`` is a fraction (the paper's settings train for hours each); more jobs a
trial pay a worker group's start-up once for many short settings (the embedded scale's). A trial's points and jobs
are a fixed share of all of them, finished or not, so a rerun gives an interrupted trial the same Train run name (with
``auto``, on a cluster of the same size): it resumes mid-pretraining or mid-setting.

A trial is ``{"name": ..., "points": [{"pretraining": ..., "finetunings": [job, ...]}, ...]}``.
"""

import dataclasses

from orchestrator.cost import SEARCH_PROTOCOLS, search_settings
from orchestrator.plan import Finetuning, Plan, Pretraining, content_hash

SEARCH = "search"  # the row kind of one setting of a search


def job(unit: Finetuning, kind: str = "finetune", stage: dict | None = None, blocked: str | None = None) -> dict:
    """A unit as a trial runs it: its fields, the kind of row it writes, its part of a search (``stage``: None, or
    {"setting": {lr, weight_decay}} or {"refit": {"settings": [...], "scores": [...]}}) and, if it cannot run,
    why (``blocked``: the trial writes that as its failed row)."""
    return {**dataclasses.asdict(unit), "kind": kind, "stage": stage, "blocked": blocked}


def setting_id(unit_id: str, setting: dict) -> str:
    return content_hash({"search": unit_id, **setting})


def point_trials(plan: Plan, finished: set[str], per_trial: int) -> list[dict]:
    """Stage 1: each pretraining and its transfers but the searches, ``per_trial`` of these points a trial, dealt in
    turn (of n trials, trial k runs points k, k + n, ...: a grid's points often grow along the plan, and dealt so they
    load the trials alike); a trial whose every unit has its row is left out."""
    points = [{"pretraining": dataclasses.asdict(pretraining),
               "finetunings": [job(u) for u in plan.finetunings_of(pretraining.unit_id)
                               if u.protocol not in SEARCH_PROTOCOLS]}
              for pretraining in plan.pretrainings]  # fmt: skip
    count = -(-len(points) // per_trial)
    trials = []
    for share in (points[k::count] for k in range(count)):
        ids = [point["pretraining"]["unit_id"] for point in share]
        units = [*ids, *(transfer["unit_id"] for point in share for transfer in point["finetunings"])]
        if any(unit not in finished for unit in units):
            # One point keeps the name it has always had: a run interrupted before points were shared resumes
            trials.append({"name": f"point-{ids[0]}" if len(ids) == 1 else f"points-{content_hash(ids)}",
                           "points": share})  # fmt: skip
    return trials


def _searches(plan: Plan, finished: set[str]) -> list[tuple[Pretraining, list[Finetuning]]]:
    """(pretraining, its searches), for the pretrainings that have their rows and a search without one."""
    searching = []
    for pretraining in plan.pretrainings:
        searches = [u for u in plan.finetunings_of(pretraining.unit_id) if u.protocol in SEARCH_PROTOCOLS]
        if pretraining.unit_id in finished and any(u.unit_id not in finished for u in searches):
            searching.append((pretraining, searches))
    return searching


def _trials(stage: str, pretraining: Pretraining, jobs: list[dict], per_trial: int, to_run) -> list[dict]:
    """The jobs in slices of ``per_trial``, one trial each, named by its jobs; a slice with no job ``to_run`` is left
    out."""
    slices = [jobs[start : start + per_trial] for start in range(0, len(jobs), per_trial)]
    return [
        {"name": f"{stage}-{content_hash([j['unit_id'] for j in part])}",
         "points": [{"pretraining": dataclasses.asdict(pretraining), "finetunings": part}]}
        for part in slices if any(map(to_run, part))
    ]  # fmt: skip


def setting_trials(plan: Plan, finished: set[str], per_trial: int) -> list[dict]:
    """Stage 2: the settings of every search that has no row, of pretrainings that have theirs. A finished search's
    settings stay in the slices, so that every slice is the same over reruns."""
    trials = []
    for pretraining, searches in _searches(plan, finished):
        jobs = [
            {**job(unit, SEARCH, {"setting": setting, "search_of": unit.unit_id}),
             "unit_id": setting_id(unit.unit_id, setting)}
            for unit in searches
            for setting in search_settings(unit.recipe)
        ]  # fmt: skip
        trials += _trials("search", pretraining, jobs, per_trial,
                          lambda j: j["unit_id"] not in finished and j["stage"]["search_of"] not in finished)  # fmt: skip
    return trials


def refit_trials(plan: Plan, rows: dict[str, dict], per_trial: int) -> list[dict]:
    """Stage 3: the refit of every search that has no row, of pretrainings that have theirs, given every row of the
    run (``rows``: unit id -> row, failed ones too). A search with a setting that failed or never ran is blocked,
    and its row says which setting and why."""
    finished = {unit_id for unit_id, row in rows.items() if row["status"] == "ok"}
    trials = []
    for pretraining, searches in _searches(plan, finished):
        jobs = []
        for unit in searches:
            grid = search_settings(unit.recipe)
            outcomes = [rows.get(setting_id(unit.unit_id, setting)) for setting in grid]
            blocked = next((_why_blocked(index, grid[index], row) for index, row in enumerate(outcomes)
                            if row is None or row["status"] != "ok"), None)  # fmt: skip
            scores = None if blocked else [row["value"] for row in outcomes]
            jobs.append(job(unit, "finetune", {"refit": {"settings": grid, "scores": scores}}, blocked))
        trials += _trials("refit", pretraining, jobs, per_trial, lambda j: j["unit_id"] not in finished)
    return trials


def _why_blocked(index: int, setting: dict, row: dict | None) -> str:
    what = f"setting {index + 1} of the search (lr {setting['lr']:g}, weight_decay {setting['weight_decay']:g})"
    if row is None:
        return f"{what} has no result: its trial stopped before it ended. Rerun the command to train it"
    return f"{what} failed: {row['error'].strip().splitlines()[-1]}. Rerun the command to train it again"

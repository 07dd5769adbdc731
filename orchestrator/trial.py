"""A Tune trial: one or more grid points (orchestrator.stages), each a pretraining and a list of jobs of it (its
transfers, settings of its hyper-parameter searches, or their refits), fitted as Ray Train TorchTrainers (Ray Train V2)
whose workers, point after point, pretrain (unless that is done) and then run the jobs, so a trial pays Ray Train's
worker-group start-up once.

The store is the source of truth: what has a row is not run again. Rank 0 writes each unit's row as soon as the unit
ends, and the pretrained network goes to ``<run>/pretrained/<unit id>/model.pt``, outside Ray Train's checkpoint
rotation, where every later fine-tuning of it reads it. Train run names come from the units' hashes, so a rerun after an
interruption resumes a worker group from its last checkpoint, mid-pretraining or mid-fine-tuning. A unit that ends
without a row (its worker group failed for good) gets a failed row that says why.

The workers' loop is orchestrator.worker.
"""

import functools
import json
import socket
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow.fs as pafs
import ray
import torch
from ray import tune
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

import synthetic
from orchestrator.store import Store, filesystem_of, join, write_whole
from subsets.manifest import SubsetSpec, build
from tasks import TASKS

ERROR_LIMIT = 4000  # characters of a traceback kept in a failed row
RUN_STATE_FILE = "checkpoint_manager_snapshot.json"  # Ray Train's list of a run's checkpoints
WAIT_FOR_PRETRAINING_S = 2.0  # how often a further fine-tuning group looks for the pretraining's row


def sweep_trial(job: dict, settings: dict) -> None:
    """``job``: the trial's name and grid points (``points``: each a pretraining and its jobs, ``finetunings``; Tune's
    config, shown in its progress table); ``settings``: what every trial shares (run, storage, resources, versions)."""
    store = Store(settings["results"])
    finished = store.finished()
    context = {
        "run": settings["run"], "grid": settings["grid"], "trial_id": tune.get_context().get_trial_id(),
        "config": settings["config"], "versions": settings["versions"], "git_revision": settings["git_revision"],
        "hardware": {"node": socket.gethostname(), "ray_node_id": ray.get_runtime_context().get_node_id(),
                     **settings["resources"],
                     "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
    }  # fmt: skip
    count = settings["resources"]["finetune_groups"]
    points = [_point(point, count, settings, context, store, finished) for point in job["points"]]
    unbuilt = points.count(None)  # subsets that could not be built: their rows say why
    points = [point for point in points if point is not None]
    fit = functools.partial(_fit_group, name=job["name"], settings=settings)
    with ThreadPoolExecutor(count) as pool:
        futures = {}
        for k in range(count):
            share = [point for point in points if point["groups"][k] or (k == 0 and point["stage"] is not None)]
            if not share:
                continue
            if k and share[0]["stage"] is not None:  # finetune_groups > 1 (one point a trial): once it is published
                pretrain_id = share[0]["pretraining"]["unit_id"]
                futures[k] = pool.submit(_after_pretraining, futures[0], store, pretrain_id, fit, k, share)
            else:
                futures[k] = pool.submit(fit, k, share)
        errors = {k: future.result() for k, future in futures.items()}
    failed = unbuilt
    for point in points:
        pretrain_id = point["pretraining"]["unit_id"]
        if pretrain_id not in finished and store.finished_row("pretrain", pretrain_id) is None:
            # its fine-tunings did not run, and have no rows
            error = errors.get(0) or "the worker group ended without the pretraining's result"
            store.write({**point["stage"]["row"], "status": "failed", "error": _shared(error, job, pretrain_id)})
            failed += 1
            continue
        for k, group in enumerate(point["groups"]):
            for unit in group:
                if store.finished_row(unit["kind"], unit["unit_id"]) is None:
                    cause = _shared(errors.get(k) or "the worker group ended without this unit's result", job,
                                    pretrain_id)  # fmt: skip
                    store.write({**point["rows"][unit["unit_id"]], "status": "failed", "error": cause})
    tune.report({"points": len(job["points"]), "pretrain_failed": failed,
                 "finetunings": sum(len(point["finetunings"]) for point in job["points"])})  # fmt: skip


def _point(point: dict, count: int, settings: dict, context: dict, store: Store, finished: dict) -> dict | None:
    """What a trial's worker groups need of one grid point: its pretraining ``stage`` (None when it has its row), its
    unfinished transfers dealt over the ``count`` fine-tuning groups (``groups``) and their rows; failed rows written
    for the transfers that cannot run. None, with a failed row written, when the point's subset cannot be built."""
    pretraining = point["pretraining"]
    model = join(settings["run_dir"], "pretrained", pretraining["unit_id"])
    stage = None
    if pretraining["unit_id"] not in finished:
        stage = _pretraining_stage(pretraining, model, settings, context, store)
        if stage is None:
            return None
    # A group keeps its index across reruns: it names the Train run that a rerun resumes.
    groups = [[u for u in point["finetunings"][k::count] if u["unit_id"] not in finished] for k in range(count)]
    units = [unit for group in groups for unit in group]
    cannot_run = _changed_data(units) | {u["unit_id"]: u["blocked"] for u in units if u["blocked"] is not None}
    rows = {}
    for unit in units:
        rows[unit["unit_id"]] = _finetune_row(unit, pretraining, model, context)
        if unit["unit_id"] in cannot_run:
            store.write({**rows[unit["unit_id"]], "status": "failed", "error": cannot_run[unit["unit_id"]]})
    groups = [[u for u in group if u["unit_id"] not in cannot_run] for group in groups]
    return {"pretraining": pretraining, "model": model, "stage": stage, "groups": groups, "rows": rows}


def _shared(error: str, job: dict, pretrain_id: str) -> str:
    """A failed row's error; where the trial's points share worker groups (resources.points_per_trial), saying so:
    the group may have failed on another point's unit before it reached this one."""
    if len(job["points"]) == 1:
        return error
    others = [p["pretraining"]["unit_id"] for p in job["points"] if p["pretraining"]["unit_id"] != pretrain_id]
    return (f"the worker group of trial {job['name']}, which this grid point shares with {', '.join(others)} "
            f"(resources.points_per_trial), ended before this unit had its result; rerun the command to run it "
            f"again. The group's error: {error}")  # fmt: skip


PUBLISHED_EVAL_BATCH = 100  # images per batch when published weights are scored on the ImageNet validation set


def _pretraining_stage(job: dict, model: str, settings: dict, context: dict, store: Store) -> dict | None:
    """What a worker group needs to pretrain (its loop's config and the row it completes), once the subset's
    manifest is built and published; None, with a failed row written, when it cannot be built. Published weights
    need no subset: their stage loads them."""
    if job["weights"] is not None:
        weights = job["weights"]
        row = {**context, "kind": "pretrain", "unit_id": job["unit_id"], "pretrain_id": job["unit_id"],
               "model": job["model"]["name"], "protocol": "published", "label_set": f"published:{weights['tag']}",
               "classes": 1000, "labels": 1000, "metric": "imagenet_top1", "checkpoint": model}  # fmt: skip
        loop = {"published": {**weights, "model": job["model"]["name"]}, "image_size": job["recipe"]["image_size"],
                "use_gpu": settings["resources"]["use_gpu"], "loader_workers": settings["resources"]["loader_workers"],
                "batch_size": PUBLISHED_EVAL_BATCH}  # fmt: skip
        return {"loop": loop, "row": row}
    subset_spec = SubsetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["subset"].items()})
    row = {**context, "kind": "pretrain", "unit_id": job["unit_id"], "pretrain_id": job["unit_id"],
           "model": job["model"]["name"], "protocol": "pretrain", "label_set": subset_spec.label_set,
           "images_per_class": subset_spec.images_per_class, "budget": subset_spec.budget,
           "subset_seed": subset_spec.seed, "epochs": job["recipe"]["epochs"], "metric": "val_top1",
           "data_fingerprint": subset_spec.data_fingerprint, "checkpoint": model}  # fmt: skip
    started = time.perf_counter()
    try:
        subset = build(subset_spec)
        facts = subset.facts
        row |= {"classes": facts["classes"], "labels": facts["labels"], "train_images": facts["train_images"],
                "budget_shortfall": facts["shortfall"], "subset_hash": facts["hash"]}  # fmt: skip
        manifest = _publish_manifest(subset.directory / "manifest.parquet", settings, facts["hash"])
    except Exception as error:  # the unit fails alone: its row says why, the sweep goes on
        store.write({**row, "status": "failed", "error": _failed(error), "wall_time_s": time.perf_counter() - started})
        return None
    loop = {**job["recipe"], "manifest": manifest, "data_source": subset_spec.source,
            "extra_source": subset_spec.extra_source, "num_labels": facts["labels"], "model": job["model"],
            "use_gpu": settings["resources"]["use_gpu"],
            "seed": subset_spec.seed,  # a pretraining's replicates differ in their images and initialisation
            "unit_id": job["unit_id"],
            "loader_workers": settings["resources"]["loader_workers"]}  # fmt: skip
    return {"loop": loop, "row": row}


def _finetune_row(unit: dict, pretraining: dict, model: str, context: dict) -> dict:
    return {**context, "kind": unit["kind"], "unit_id": unit["unit_id"], "pretrain_id": pretraining["unit_id"],
            "model": pretraining["model"]["name"], "protocol": unit["protocol"], "task": unit["task"],
            "seed": unit["seed"], "epochs": unit["recipe"].get("epochs"), "data_fingerprint": unit["data_fingerprint"],
            "checkpoint": model}  # fmt: skip


def _fit_group(index: int, share: list[dict], *, name: str, settings: dict) -> str | None:
    """Fits fine-tuning group ``index`` of the trial over its ``share`` of the trial's points (``_point``), one after
    another: group 0 pretrains each point that has no row first; the error it ended with, if any."""

    def part(point: dict) -> dict:
        units = [{k: u[k] for k in ("unit_id", "task", "protocol", "seed", "recipe", "stage")}
                 for u in point["groups"][index]]  # fmt: skip
        return {
            "model": point["model"], "pretraining": point["stage"] if index == 0 else None,
            "rows": {u["unit_id"]: point["rows"][u["unit_id"]] for u in units},
            "finetuning": {"units": units, "data_sources": {u["task"]: u["data_source"] for u in point["groups"][index]},
                           "use_gpu": settings["resources"]["use_gpu"],
                           "loader_workers": settings["resources"]["loader_workers"],
                           "image_size": point["pretraining"]["recipe"]["image_size"]},
        }  # fmt: skip

    loop_config = {"results": settings["results"], "points": [part(point) for point in share]}
    try:
        _fit(point_fn_per_worker, loop_config, f"{name}-group{index}", settings)
    except Exception as failure:
        return _failed(failure)
    return None


def _after_pretraining(first: Future, store: Store, pretrain_id: str, fit, index: int, share: list) -> str | None:
    """Fits a further fine-tuning group once the first group's pretraining has its row; nothing if it has none
    when that group ends (the pretraining failed)."""
    while not first.done() and store.finished_row("pretrain", pretrain_id) is None:
        time.sleep(WAIT_FOR_PRETRAINING_S)
    return fit(index, share) if store.finished_row("pretrain", pretrain_id) is not None else None


def point_fn_per_worker(config: dict) -> None:
    """The loop of every worker of a trial's group (orchestrator.worker.run_points), imported in the worker: the
    trial's own process only drives trainers, and the training stack (timm, torchvision, the trainers) would cost it
    seconds of start-up."""
    from orchestrator.worker import run_points

    run_points(config)


def _scaling(settings: dict) -> ScalingConfig:
    resources = settings["resources"]
    return ScalingConfig(
        num_workers=resources["num_workers"],
        use_gpu=resources["use_gpu"],
        resources_per_worker={"CPU": resources["cpus_per_worker"],
                              **({"GPU": resources["gpus_per_worker"]} if resources["use_gpu"] else {})},
    )


def _run_config(name: str, settings: dict) -> RunConfig:
    return RunConfig(
        name=name,
        storage_path=settings["train_storage"],
        failure_config=FailureConfig(max_failures=settings["resources"]["max_failures"]),
        # The latest checkpoint holds all a run needs (a pretraining's model, a fine-tuning group's results); the
        # one before it stays as a spare. Keeping every epoch's (or every detector interval's) would fill disks.
        checkpoint_config=CheckpointConfig(num_to_keep=2),
        # Every report reaches Tune, so a stopped sweep (Ctrl-C) stops the trial at its trainer's next report rather
        # than when the trial's last trainer ends.
        callbacks=[TuneReportCallback()],
    )


def _fit(train_fn, loop_config: dict, name: str, settings: dict) -> None:
    """Fits a TorchTrainer, resuming the Train run of that name if it exists."""
    _set_aside_unreadable_run_state(join(settings["train_storage"], name))
    result = TorchTrainer(
        train_fn,
        train_loop_config=loop_config,
        scaling_config=_scaling(settings),
        run_config=_run_config(name, settings),
    ).fit()
    _remove_orphaned_checkpoints(result)


def _set_aside_unreadable_run_state(run: str) -> None:
    """Ray Train rewrites a run's checkpoint list in place, so a disk that fills mid-write leaves it empty, and a Ray
    upgrade makes it foreign; Ray Train then refuses to start the run at all. Such a list is renamed, and the worker
    group starts afresh: every unit that ended has its row, and the published network, so only the unit in progress
    starts over."""
    filesystem, path = filesystem_of(join(run, RUN_STATE_FILE))
    if filesystem.get_file_info(path).type != pafs.FileType.File:
        return
    with filesystem.open_input_stream(path) as file:
        body = file.read()
    try:
        foreign = json.loads(body).get("ray_version") != ray.__version__
    except (ValueError, AttributeError):
        foreign = True
    if foreign:
        aside = f"{path}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
        filesystem.move(path, aside)
        print(f"warning: {path} was unreadable or written by another Ray version; set aside as {aside}, and the "
              "worker group starts afresh (finished units keep their rows)", file=sys.stderr)  # fmt: skip


def _remove_orphaned_checkpoints(result) -> None:
    """Deletes the checkpoint folders of a finished Train run that its checkpoint manager does not hold: those of an
    attempt whose workers were killed, which Ray Train neither keeps nor deletes, and which would fill the storage."""
    held = [result.checkpoint, *(checkpoint for checkpoint, _ in result.best_checkpoints or [])]
    kept = {checkpoint.path.rstrip("/").rsplit("/", 1)[-1] for checkpoint in held if checkpoint is not None}
    for entry in result.filesystem.get_file_info(pafs.FileSelector(result.path, allow_not_found=True)):
        orphaned = entry.base_name.startswith("checkpoint_") and entry.base_name not in kept
        if orphaned and entry.type == pafs.FileType.Directory:
            result.filesystem.delete_dir(entry.path)


def _failed(error: BaseException) -> str:
    return "".join(traceback.format_exception(error))[-ERROR_LIMIT:]


def _changed_data(units: list) -> dict[str, str]:
    """unit id -> why, for the units whose data no longer holds what the run planned on (on this node)."""
    source_of = {u["unit_id"]: (TASKS[u["task"]].dataset, u["data_source"]) for u in units}
    held = {source: synthetic.fingerprint(*source) for source in set(source_of.values())}
    return {
        u["unit_id"]: synthetic.changed_since_planned(
            "data.{}={}".format(*source_of[u["unit_id"]]), u["data_fingerprint"], held[source_of[u["unit_id"]]]
        )
        for u in units
        if held[source_of[u["unit_id"]]] != u["data_fingerprint"]
    }


def _publish_manifest(local: Path, settings: dict, subset_hash: str) -> str:
    """The manifest, copied into the run's storage so that workers on any node can read it."""
    target = join(settings["run_dir"], "subsets", f"{subset_hash}.parquet")
    filesystem, path = filesystem_of(target)
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    write_whole(filesystem, path, local.read_bytes())
    return target

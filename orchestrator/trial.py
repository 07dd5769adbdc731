"""One Tune trial: a pretraining, then every fine-tuning of it, each a Ray Train TorchTrainer.

The trial is the Tune function that builds and fits the trainers (Ray Train V2). The store is the
source of truth: a finished pretraining is not run again, only its missing fine-tunings are, and
each finished unit's row is written as soon as its trainer returns. Train run names are the
units' hashes, so a rerun after an interruption resumes a trainer from its last checkpoint.
"""

import socket
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.fs as pafs
import ray
import torch
from ray import tune
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

import synthetic
from orchestrator.store import Store, filesystem_of, join, uri_of, write_whole
from subsets.manifest import SubsetSpec, build
from tasks import TASKS
from trainers import pretrain, transfer

ERROR_LIMIT = 4000  # characters of a traceback kept in a failed row


def sweep_trial(job: dict, settings: dict) -> None:
    """``job``: the grid point's pretraining and fine-tunings (Tune's config, shown in its
    progress table); ``settings``: what every trial shares (run, storage, resources, versions)."""
    store = Store(settings["results"])
    finished = store.finished()
    context = {
        "run": settings["run"], "grid": settings["grid"], "trial_id": tune.get_context().get_trial_id(),
        "config": settings["config"], "versions": settings["versions"], "git_revision": settings["git_revision"],
        "hardware": {"node": socket.gethostname(), "ray_node_id": ray.get_runtime_context().get_node_id(),
                     **settings["resources"],
                     "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]},
    }  # fmt: skip
    pretraining = job["pretraining"]
    row = finished.get(pretraining["unit_id"]) or _pretrain(pretraining, settings, context, store)
    if row["status"] != "ok":
        tune.report({"pretrain_failed": 1})
        return
    checkpoint = _checkpoint(row["checkpoint"])
    units = job["finetunings"]
    count = settings["resources"]["finetune_groups"]
    groups = [units[k::count] for k in range(count)]
    run_group = lambda index_group: _finetune(*index_group, pretraining, checkpoint, settings, context, store)  # noqa: E731
    # A group keeps its index across reruns: it names the Train run that a rerun resumes.
    todo = [(k, [u for u in group if u["unit_id"] not in finished]) for k, group in enumerate(groups)]
    pending = [(k, group) for k, group in todo if group]
    if len(pending) > 1:
        with ThreadPoolExecutor(len(pending)) as pool:
            list(pool.map(run_group, pending))
    else:
        list(map(run_group, pending))
    tune.report({"pretrain_val_top1": row["value"], "finetunings": len(units)})


def _scaling(settings: dict) -> ScalingConfig:
    resources = settings["resources"]
    return ScalingConfig(
        num_workers=resources["num_workers"],
        use_gpu=resources["use_gpu"],
        resources_per_worker={"CPU": resources["cpus_per_worker"], **({"GPU": 1} if resources["use_gpu"] else {})},
    )


def _run_config(name: str, settings: dict) -> RunConfig:
    return RunConfig(
        name=name,
        storage_path=settings["train_storage"],
        failure_config=FailureConfig(max_failures=settings["resources"]["max_failures"]),
        # The latest checkpoint holds all a run needs (a pretraining's model, a fine-tuning group's results); the
        # one before it stays as a spare. Keeping every epoch's (or every detector interval's) would fill disks.
        checkpoint_config=CheckpointConfig(num_to_keep=2),
        callbacks=[TuneReportCallback()],
    )


def _fit(train_fn, loop_config: dict, name: str, settings: dict, state_file: str) -> tuple[Checkpoint, dict]:
    """Fits a TorchTrainer (resuming the Train run of that name if it exists) and returns its
    last checkpoint and the named file in it."""
    result = TorchTrainer(
        train_fn,
        train_loop_config=loop_config,
        scaling_config=_scaling(settings),
        run_config=_run_config(name, settings),
    ).fit()
    _remove_orphaned_checkpoints(result)
    with result.checkpoint.as_directory() as directory:
        return result.checkpoint, torch.load(Path(directory) / state_file, weights_only=True)


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


def _pretrain(job: dict, settings: dict, context: dict, store: Store) -> dict:
    subset_spec = SubsetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in job["subset"].items()})
    started = time.perf_counter()
    row = {**context, "kind": "pretrain", "unit_id": job["unit_id"], "pretrain_id": job["unit_id"],
           "model": job["model"]["name"], "protocol": "pretrain", "label_set": subset_spec.label_set,
           "images_per_class": subset_spec.images_per_class, "budget": subset_spec.budget,
           "subset_seed": subset_spec.seed, "epochs": job["recipe"]["epochs"], "metric": "val_top1",
           "data_fingerprint": subset_spec.data_fingerprint}  # fmt: skip
    try:
        subset = build(subset_spec)
        facts = subset.facts
        row |= {"classes": facts["classes"], "labels": facts["labels"], "train_images": facts["train_images"],
                "budget_shortfall": facts["shortfall"], "subset_hash": facts["hash"]}  # fmt: skip
        manifest = _publish_manifest(subset.directory / "manifest.parquet", settings, facts["hash"])
        loop_config = {**job["recipe"], "manifest": manifest, "data_source": subset_spec.source,
                       "extra_source": subset_spec.extra_source,
                       "num_labels": facts["labels"], "model": job["model"], "use_gpu": settings["resources"]["use_gpu"],
                       "seed": subset_spec.seed,  # a pretraining's replicates differ in their images and initialisation
                       "loader_workers": settings["resources"]["loader_workers"]}  # fmt: skip
        checkpoint, state = _fit(
            pretrain.train_fn_per_worker, loop_config, f"pretrain-{job['unit_id']}", settings, pretrain.STATE_FILE
        )
        history = state["history"]
        final = history[-1]
        row |= {"status": "ok", "value": final["val_top1"], "metrics": {"final": final, "history": history},
                "images_per_s": sum(h["images_per_s"] for h in history) / len(history),
                "checkpoint": uri_of(checkpoint.path, settings["train_storage"])}  # fmt: skip
    except Exception as error:  # the unit fails alone: its row says why, the sweep goes on
        row |= {"status": "failed", "error": _failed(error)}
    row["wall_time_s"] = time.perf_counter() - started
    store.write(row)
    return row


def _finetune(index: int, units: list, pretraining: dict, checkpoint: Checkpoint, settings, context, store) -> None:
    started = time.perf_counter()
    pretrain_id = pretraining["unit_id"]
    changed = _changed_data(units)
    runnable = [u for u in units if u["unit_id"] not in changed]
    loop_config = {"units": [{k: u[k] for k in ("unit_id", "task", "protocol", "seed", "recipe")} for u in runnable],
                   "pretrained": checkpoint, "data_sources": {u["task"]: u["data_source"] for u in runnable},
                   "use_gpu": settings["resources"]["use_gpu"], "loader_workers": settings["resources"]["loader_workers"],
                   "image_size": pretraining["recipe"]["image_size"]}  # fmt: skip
    results, error = {}, None
    if runnable:
        try:
            name = f"finetune-{pretrain_id}-group{index}"
            _, progress = _fit(transfer.finetune_fn_per_worker, loop_config, name, settings, transfer.PROGRESS_FILE)
            results = progress["results"]
        except Exception as failure:
            error = _failed(failure)
    for unit in units:
        row = {**context, "kind": "finetune", "unit_id": unit["unit_id"], "pretrain_id": pretrain_id,
               "model": pretraining["model"]["name"], "protocol": unit["protocol"], "task": unit["task"],
               "seed": unit["seed"], "epochs": unit["recipe"].get("epochs"), "data_fingerprint": unit["data_fingerprint"],
               "checkpoint": uri_of(checkpoint.path, settings["train_storage"]), "wall_time_s": time.perf_counter() - started}  # fmt: skip
        outcome = results.get(unit["unit_id"])
        if outcome is None:
            cause = changed.get(unit["unit_id"]) or error or "the fine-tuning group ended without this unit's result"
            row |= {"status": "failed", "error": cause}
        else:
            row |= {"status": "ok", "metric": f"{unit['task']}_{outcome['metric']}", "value": outcome["value"],
                    "metrics": outcome, "images_per_s": outcome["images_per_s"], "train_images": outcome["train_images"],
                    "wall_time_s": outcome["wall_time_s"]}  # fmt: skip
        store.write(row)


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


def _checkpoint(uri: str) -> Checkpoint:
    filesystem, path = filesystem_of(uri)
    return Checkpoint(path, filesystem=filesystem)

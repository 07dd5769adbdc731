"""Run a grid: python -m orchestrator.run grid=NAME [key=value ...]

    python -m orchestrator.run grid=classes_vs_examples                 # embedded data, local Ray
    python -m orchestrator.run grid=classes_vs_examples dry_run=true    # the plan, nothing run
    python -m orchestrator.run grid=classes_vs_examples scale=paper data.imagenet=/datasets/imagenet \\
        data.voc=/datasets/VOCdevkit data.sun397=/datasets/SUN397 resources.use_gpu=true \\
        ray.address=auto storage=s3://bucket/runs run=my-run

Each grid point is one Tune trial, which fits one Ray Train TorchTrainer: its workers pretrain, then run the
point's fine-tunings (orchestrator.trial); the settings of hyper-parameter searches, then their refits, are further
Tune trials (orchestrator.stages). Results go to <storage>/<run>/results as Parquet, one file per
finished unit; the same command with the same run name resumes, skipping finished units; one driver holds a
run at a time (``orchestrator.lock``), and a second exits at once naming the first. The report (figures,
tables, the paper's findings checked) goes to <storage>/<run>/report/ (report=false: none), and the last line
printed says where.
"""

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from omegaconf import OmegaConf

import synthetic
from formats import GENERATE_HINT, DataFormatError
from formats.imagenet import not_class_folders
from models import list_models, project_models
from orchestrator.config import POINT_KEYS, ConfigError, available, load, run_name
from orchestrator.cost import estimate
from orchestrator.lock import DriverLock, RunHeld
from orchestrator.plan import describe, make_plan, save
from orchestrator.stages import point_trials, refit_trials, setting_trials
from orchestrator.store import Store, check_storage, filesystem_of, join, write_whole
from subsets.labels import LABEL_SET_METHODS
from tasks import TASKS

PACKAGES = ("torch", "torchvision", "ray", "mmcv", "mmdet", "mmengine", "nltk", "timm", "pyarrow", "transfer-grids")
ROOT = Path(__file__).resolve().parents[1]


def usage() -> str:
    tasks = "".join(f"\n  {n:12s} {TASKS[n].protocol:9s} data.{TASKS[n].dataset:9s} {TASKS[n].description}"
                    for n in TASKS.names())  # fmt: skip
    points = "".join(f"\n  {key:20s} {what}" for key, what in POINT_KEYS.items())
    return (
        f"{__doc__}\ngrids (orchestrator/conf/grid/): {', '.join(available('grid'))}"
        f"\nscales (orchestrator/conf/scale/): {', '.join(available('scale'))}"
        f"\ntasks (grid.tasks; protocol, data key):{tasks}"
        f"\nmodels (model): {', '.join(project_models())}, or any of timm's {len(list_models())} architectures"
        f"\nlabel sets (label_set): {', '.join(LABEL_SET_METHODS.names())}"
        f"\ngrid point keys (a grid-level key of the same name is every point's default):{points}"
        "\nkeys and their defaults: orchestrator/conf/config.yaml"
    )


def versions() -> dict[str, str]:
    found = {}
    for package in PACKAGES:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found | {"python": sys.version.split()[0]}


def git_revision() -> str | None:
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return revision.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def check_data(config, plan) -> None:
    """Every data source exists, in the layout its tasks read, before anything starts; embedded ones are
    generated here, once."""
    # Published weights read ImageNet only to measure their top-1 on a real one.
    needed = {"imagenet": []} if any(p.subset or p.weights["imagenet"] for p in plan.pretrainings) else {}
    if any(p.subset and p.subset.extra_source for p in plan.pretrainings):
        needed["imagenet_extra"] = []
    for task in sorted({f.task for f in plan.finetunings}):
        needed.setdefault(TASKS[task].dataset, []).append(task)
    for dataset, tasks in sorted(needed.items()):
        source = config.data[dataset]
        if source.startswith(synthetic.EMBEDDED):
            synthetic.resolve(dataset, source)
            continue
        if not Path(source).expanduser().is_dir():
            raise ConfigError(
                f"data.{dataset}={source} is not a folder. Point data.{dataset} at the real dataset, or use "
                f"data.{dataset}=embedded:default for the embedded synthetic one ({GENERATE_HINT})."
            )
        if dataset in ("imagenet", "imagenet_extra"):
            left_out = not_class_folders(Path(source).expanduser(), extra=dataset == "imagenet_extra")
            if left_out:
                print(f"note: data.{dataset}={source}: {len(left_out)} entries are not class folders and are left "
                      f"out: {', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}")  # fmt: skip
        for task in tasks:
            try:
                TASKS[task].check_layout(Path(source).expanduser())
            except DataFormatError as error:
                raise ConfigError(f"data.{dataset}={source} cannot serve task {task}: {error}") from None


def storage_root(config) -> str:
    return config.storage if "://" in config.storage else str(Path(config.storage).expanduser().resolve())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(usage())
        return 0
    try:
        config = load(argv)
        plan = make_plan(config)
        name = run_name(config)
        run_dir = join(storage_root(config), name)
        check_storage(run_dir)
        store = Store(join(run_dir, "results"))
        finished = store.finished()
        print(describe(plan, config, set(finished)))
        if config.dry_run:
            print(estimate(plan, config, set(finished)))
            return 0
        lock = DriverLock(run_dir, name)
        dead = lock.acquire()
    except (ConfigError, ValueError, OSError, RunHeld) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if dead is not None:
        print(f"took over run {name} from a driver that is gone: pid {dead['pid']} on {dead['host']}")
    try:
        return _run(config, plan, name, run_dir, store)
    except KeyboardInterrupt:
        if not lock.lost:
            raise
        print(f"error: another driver took over run {name} (see {lock.path}); this one stopped", file=sys.stderr)
        return 3
    finally:
        lock.release()


def _run(config, plan, name: str, run_dir: str, store: Store) -> int:
    """Runs the plan's unfinished units while holding the run; the exit status."""
    try:
        check_data(config, plan)
    except (ConfigError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finished = store.finished()  # again: a driver that held the run before may have finished more
    print(estimate(plan, config, set(finished)))  # once the run is held: counting the data may generate it
    filesystem, path = filesystem_of(run_dir)
    try:
        write_whole(filesystem, join(path, "config.yaml"), OmegaConf.to_yaml(config, resolve=True).encode())
        save(plan, config, run_dir)
    except OSError as error:
        print(f"error: cannot write the run's files to {run_dir}: {error}", file=sys.stderr)
        return 2
    settings = {
        "run": name, "grid": config.grid.name, "run_dir": run_dir, "results": store.uri,
        "train_storage": join(run_dir, "train"), "config": OmegaConf.to_container(config, resolve=True),
        "resources": OmegaConf.to_container(config.resources), "versions": versions(), "git_revision": git_revision(),
    }  # fmt: skip
    units = [*plan.pretrainings, *plan.finetunings]
    trial_errors = _sweep(config, plan, store, settings, run_dir) if any(u.unit_id not in finished for u in units) else []
    status = _summarise(store, plan, trial_errors)
    if config.report:
        from orchestrator.report import ReportError, write_report  # matplotlib: only once there is something to draw

        try:
            print(f"report: {write_report(storage_root(config), [name])}")
        except ReportError as error:  # e.g. no unit finished: the run's own status says what failed
            print(f"no report: {error}")
    print(store.uri)
    return status


def _sweep(config, plan, store: Store, settings: dict, run_dir: str) -> list[str]:
    """Runs the plan's stages (orchestrator.stages), each as Tune trials once the one before has ended, from what the
    store holds then; the errors of the trials that ended in one."""
    # Here, not at the top: --help, config loading and dry runs import no Ray Train, MMDetection or training code.
    import ray
    from ray import tune

    from orchestrator.trial import sweep_trial

    os.environ.setdefault("RAY_TRAIN_V2_ENABLED", "1")
    # A worker group waits for its turn when trials outnumber free CPUs, and a busy machine
    # starts worker processes slowly: Ray Train's 60 s default then fails healthy runs.
    os.environ.setdefault("RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S", "1800")
    if config.ray.address:
        ray.init(address=config.ray.address)
    else:  # a Ray of its own: not one that `ray start` left on this machine (ray.init's default), which may be gone
        # One machine is never drained: Ray Train's watcher of node drains would be one more process per worker group
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        ray.init(address="local", include_dashboard=True, dashboard_host=config.ray.dashboard_host,
                 dashboard_port=config.ray.dashboard_port)  # fmt: skip
    try:
        concurrent = config.ray.max_concurrent_trials or _trials_that_fit(config, ray.cluster_resources())
        per_trial = config.resources.settings_per_trial
        points_per_trial = _points_per_trial(config, len(plan.pretrainings), concurrent)
        stages = {"tune": lambda: point_trials(plan, set(store.finished()), points_per_trial),
                  "tune-search": lambda: setting_trials(plan, set(store.finished()), per_trial),
                  "tune-refit": lambda: refit_trials(plan, {r["unit_id"]: r for r in store.read().to_pylist()},
                                                     per_trial)}  # fmt: skip
        errors = []
        for name, trials_of in stages.items():
            trials = trials_of()
            if not trials:
                continue
            tuner = tune.Tuner(
                # The trial only drives trainers, whose workers hold the CPUs and GPUs. Even a sliver of
                # a CPU per trial would leave no node a whole CPU for a worker; a token of memory is free.
                tune.with_resources(tune.with_parameters(sweep_trial, settings=settings), {"CPU": 0, "memory": 2**20}),
                param_space=tune.grid_search(trials),
                # A trial's process is kept for the next one: no second start-up and import, and the WordNet it loaded
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent, reuse_actors=True),
                # A trial that fails (its node lost, its store unwritable) starts again and skips what has a row.
                run_config=tune.RunConfig(name=name, storage_path=run_dir,
                                          failure_config=tune.FailureConfig(max_failures=config.resources.max_failures)),
            )  # fmt: skip
            errors += [str(result.error).strip().splitlines()[-1] for result in tuner.fit() if result.error]
        return errors
    finally:
        ray.shutdown()


def _trials_that_fit(config, available_now: dict) -> int:
    """As many trials at once as the cluster holds worker groups: more would only queue their
    trainers, whose controllers then back off and retry."""
    resources = config.resources
    fits = available_now.get("CPU", 1) // (resources.num_workers * resources.cpus_per_worker)
    if resources.use_gpu:
        fits = min(fits, available_now.get("GPU", 0) // (resources.num_workers * resources.gpus_per_worker))
    return max(1, int(fits))


def _points_per_trial(config, points: int, concurrent: int) -> int:
    """``resources.points_per_trial``; ``auto``: as many as spread the plan's points (all of them, finished or not, so
    that a rerun on the same cluster deals the same trials) evenly over the trials that run at once."""
    wanted = config.resources.points_per_trial
    return max(1, -(-points // concurrent)) if wanted == "auto" else wanted


def _summarise(store: Store, plan, trial_errors: list[str]) -> int:
    table = store.read()
    wanted = {p.unit_id for p in plan.pretrainings} | {f.unit_id for f in plan.finetunings}
    table = table.filter(pc.is_in(table["unit_id"], value_set=pa.array(sorted(wanted))))
    rows = table.to_pylist()
    failed = [r for r in rows if r["status"] != "ok"]
    missing = len(wanted) - len(rows)
    print(f"\n{len(rows) - len(failed)} of {len(wanted)} units finished, {len(failed)} failed, {missing} not run")
    for row in sorted(rows, key=lambda r: (r["kind"] != "pretrain", r["label_set"] or "", r["task"] or "")):
        if row["kind"] == "pretrain" and row["status"] == "ok":
            print(f"  pretrain {row['unit_id']} {row['label_set']:14s} {row['labels']:5d} labels "
                  f"{row['train_images']:7d} images  val top-1 {row['value']:.3f}")  # fmt: skip
    for row in failed:
        print(f"  FAILED {row['kind']} {row['unit_id']}: {row['error'].strip().splitlines()[-1]}")
    if trial_errors:
        print(
            f"{len(trial_errors)} grid point(s) stopped before writing their rows (rerun the command to finish them):"
        )
        for error in trial_errors:
            print(f"  {error}")
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())

"""What a sweep loses when things fail: each fault scenario on a small embedded grid (2 pretrainings, 4
fine-tunings), and per scenario whether the sweep finished, rows expected / present / duplicated / lost, and the
time to recover (the scenario's wall time, reruns included, less a clean run's, measured first in the same run).

    .venv/bin/python benchmarks/reliability.py [scenario ...]

Scenarios: clean, worker_kill (a training worker SIGKILLed mid-pretraining), node_kill (the Ray node running the
training killed whole, on a three-node cluster on this machine), driver_kill (the driver SIGKILLed, then the
command run again), two_drivers (a second driver started on the run while the first runs), full_disk (the
storage, a 512 MiB tmpfs, filled after the first row; the run again once space is freed; needs `unshare -rm`),
corrupt_data (an ImageNet copy with truncated, zero-byte and garbage JPEGs). A row is present when its unit
has status ok, duplicated when two files hold one unit, lost when a unit of the run's last plan has no such row
at the end.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.dataset as ds

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import synthetic  # noqa: E402

GRID = ["data.imagenet=embedded:tiny", "data.voc=embedded:tiny", "data.sun397=embedded:tiny", "pretrain.epochs=3",
        "finetune.epochs=1", "grid.budget=300", "grid.points=[{label_set:random_250},{label_set:random_500}]",
        "grid.tasks=[sun397]", "grid.seeds=[0,1]", "ray.max_concurrent_trials=1", "report=false"]  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def command(storage: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator.run", *GRID, f"storage={storage}", "run=r", *extra]


def start(storage: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(command(storage, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def finish(process: subprocess.Popen) -> int:
    output, _ = process.communicate(timeout=3600)
    if process.returncode not in (0, 1):
        print(output[-3000:], file=sys.stderr)
    return process.returncode


def wait_for(condition, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the fault's moment never came")
        time.sleep(0.5)


def first_row(storage: Path):
    results = storage / "r" / "results"
    return lambda: results.is_dir() and any(p.name.startswith("pretrain-") for p in results.iterdir())


def a_checkpoint(storage: Path):
    """A pretraining checkpoint that Ray Train has registered (a worker killed before that restarts from zero)."""

    def registered() -> bool:
        for snapshot in (storage / "r" / "train").glob("point-*/checkpoint_manager_snapshot.json"):
            try:
                if json.loads(snapshot.read_text())["checkpoint_results"]:
                    return True
            except (ValueError, KeyError):
                pass
        return False

    return registered


def resumed_once(storage: Path) -> str:
    """Whether every pretraining ran each of its epochs once: resumed from its checkpoint, not restarted."""
    rows = ds.dataset(storage / "r" / "results", format="parquet", ignore_prefixes=[".", "_"]).to_table().to_pylist()
    histories = [[h["epoch"] for h in json.loads(r["metrics"])["history"]] for r in rows if r["kind"] == "pretrain"]
    once = all(epochs == list(range(1, len(epochs) + 1)) for epochs in histories)
    return "every epoch ran once" if once else f"epochs run: {histories}"


def planned_units(storage: Path) -> set[str]:
    """The unit ids of the run's last plan (``<run>/plans/<grid>.json``)."""
    (plan,) = (storage / "r" / "plans").glob("*.json")
    points = [point for experiment in json.loads(plan.read_text())["experiments"] for point in experiment["points"]]
    return {
        unit for p in points for unit in [*p["pretrainings"], *(u for ids in p["finetunings"].values() for u in ids)]
    }


def tally(storage: Path) -> dict:
    rows = ds.dataset(storage / "r" / "results", format="parquet", ignore_prefixes=[".", "_"]).to_table().to_pylist()
    planned, ids = planned_units(storage), [r["unit_id"] for r in rows]
    ok = {r["unit_id"] for r in rows if r["status"] == "ok"} & planned
    skipped = sum(json.loads(r["metrics"])["final"].get("unreadable_skipped", 0) for r in rows
                  if r["kind"] == "pretrain" and r["status"] == "ok")  # fmt: skip
    return {"expected": len(planned), "present": len(ok), "duplicated": len(ids) - len(set(ids)),
            "lost": len(planned - ok), "other": len(set(ids) - planned), "skipped_images": skipped}  # fmt: skip


def clean(storage: Path, _) -> dict:
    return {"finished": finish(start(storage)) == 0}


def worker_kill(storage: Path, _) -> dict:
    run = start(storage)
    wait_for(a_checkpoint(storage))
    subprocess.run(["pkill", "-9", "-f", "ray::RayTrainWorker"])
    finished = finish(run) == 0
    return {"finished": finished, "note": resumed_once(storage) if finished else ""}


def node_kill(storage: Path, _) -> dict:
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the trials' node; training elsewhere
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        run = start(storage, f"ray.address={cluster.address}")
        wait_for(a_checkpoint(storage))
        worker = subprocess.run(["pgrep", "-f", "ray::RayTrainWorker"], capture_output=True, text=True).stdout.split()
        raylet = int(Path(f"/proc/{worker[0]}/stat").read_text().split(") ")[1].split()[1])  # the worker's parent
        (victim,) = [n for n in nodes if n.all_processes["raylet"][0].process.pid == raylet]
        cluster.remove_node(victim, allow_graceful=False)
        finished = finish(run) == 0
        note = f"killed the node (raylet {raylet}) of training worker {worker[0]}"
        return {"finished": finished, "note": f"{note}; {resumed_once(storage)}" if finished else note}
    finally:
        cluster.shutdown()


def driver_kill(storage: Path, _) -> dict:
    run = start(storage)
    wait_for(first_row(storage))
    run.send_signal(signal.SIGKILL)
    run.communicate()
    return {"finished": finish(start(storage)) == 0}


def two_drivers(storage: Path, _) -> dict:
    first = start(storage)
    wait_for(lambda: (storage / "r" / "driver.json").is_file())
    second = subprocess.run(command(storage), cwd=ROOT, capture_output=True, text=True, timeout=600)
    refused = second.returncode == 2 and "is held by another driver" in second.stderr
    return {"finished": finish(first) == 0 and refused, "note": "second driver refused" if refused else "NOT refused"}


FULL_DISK = """
import os, subprocess, sys, time
mount, first_command = sys.argv[1], sys.argv[2:]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", mount], check=True)
results = os.path.join(mount, "r", "results")
run = subprocess.Popen(first_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while run.poll() is None and not (os.path.isdir(results) and os.listdir(results)):
    time.sleep(0.5)
filler = os.open(os.path.join(mount, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, b"x" * 65536)
except OSError:
    os.close(filler)
first = run.wait()
os.remove(os.path.join(mount, "filler"))
second = subprocess.run(first_command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
subprocess.run(["cp", "-a", os.path.join(mount, "r"), os.environ["COPY_TO"]], check=True)
print(first, second)
"""


def full_disk(storage: Path, _) -> dict:
    mount = storage.parent / "small-disk"
    mount.mkdir()
    storage.mkdir(parents=True)
    done = subprocess.run(["unshare", "-rm", sys.executable, "-c", FULL_DISK, str(mount), *command(mount)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "COPY_TO": str(storage / "r")})  # fmt: skip
    if done.returncode != 0:
        return {"finished": False, "note": f"could not run: {done.stderr.strip().splitlines()[-1:]}"}
    first, second = map(int, done.stdout.split())
    return {"finished": second == 0, "note": f"first run's status {first} (disk full), rerun's {second}"}


def corrupt_data(storage: Path, scratch: Path) -> dict:
    copy = scratch / "imagenet"
    shutil.copytree(synthetic.resolve("imagenet", "embedded:tiny"), copy)
    images = sorted((copy / "train").rglob("*.JPEG"))
    chosen = random.Random(0).sample(images, len(images) // 20)
    for index, image in enumerate(chosen):
        data = image.read_bytes()
        image.write_bytes([b"", data[: len(data) // 3], os.urandom(len(data))][index % 3])
    finished = finish(start(storage, f"data.imagenet={copy}")) == 0
    return {"finished": finished, "note": f"{len(chosen)} of {len(images)} training JPEGs corrupted"}


SCENARIOS = {f.__name__: f for f in (clean, worker_kill, node_kill, driver_kill, two_drivers, full_disk, corrupt_data)}


def main() -> None:
    names = sys.argv[1:] or list(SCENARIOS)
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        sys.exit(f"unknown scenario(s) {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    if names[0] != "clean":
        names.insert(0, "clean")  # the baseline of the recovery times
    print(f"{'scenario':14s} {'finished':>8s} {'expected':>8s} {'present':>7s} {'duplic.':>7s} {'lost':>4s} "
          f"{'recover s':>9s}  note")  # fmt: skip
    baseline = None
    for name in names:
        with tempfile.TemporaryDirectory() as scratch:
            storage = Path(scratch) / "runs"
            started = time.perf_counter()
            outcome = SCENARIOS[name](storage, Path(scratch))
            seconds = time.perf_counter() - started
            baseline = seconds if name == "clean" else baseline
            counts = tally(storage)
            notes = [outcome.get("note", "")]
            if counts["skipped_images"]:
                notes.append(f"{counts['skipped_images']} unreadable images skipped and counted (last epochs)")
            if counts["other"]:
                notes.append(f"{counts['other']} rows of units outside the plan")
            recovery = "-" if name == "clean" else f"{seconds - baseline:+.0f}"
            print(f"{name:14s} {'yes' if outcome['finished'] else 'NO':>8s} {counts['expected']:8d} "
                  f"{counts['present']:7d} {counts['duplicated']:7d} {counts['lost']:4d} {recovery:>9s}  "
                  f"{'; '.join(n for n in notes if n)}", flush=True)  # fmt: skip
    print(f"clean run: {baseline:.0f} s")


if __name__ == "__main__":
    main()

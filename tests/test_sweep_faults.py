"""The sweep survives what clusters do: a training worker killed mid-run, the driver
interrupted and restarted, and a run spread over a two-node Ray cluster. Slow: each starts Ray
and several worker groups (`pytest -m slow`)."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import LOCAL_RAY
from ray.cluster_utils import Cluster
from test_sweep import TINY, rows, sweep

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LOCAL_RAY)]

ONE_POINT = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[sun397]", "grid.seeds=[0]"]


def start(*overrides: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.run", *overrides], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def wait_for(condition, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(1)


def registered_checkpoints(train_dir, runs: str) -> list:
    """The checkpoints Ray Train's controller has registered (a checkpoint folder appears in storage before it
    is, and a worker killed in between restarts without it)."""
    found = []
    for snapshot in train_dir.glob(f"{runs}/checkpoint_manager_snapshot.json"):
        try:
            found += json.loads(snapshot.read_text())["checkpoint_results"]
        except (json.JSONDecodeError, KeyError):  # being written
            pass
    return found


def test_killed_training_worker_resumes_from_its_checkpoint(tmp_path):
    run = start(*ONE_POINT, "pretrain.epochs=4", f"storage={tmp_path}", "run=kill")
    wait_for(lambda: registered_checkpoints(tmp_path / "kill" / "train", "point-*"), "a pretraining checkpoint")
    killed = subprocess.run(["pkill", "-9", "-f", "ray::RayTrainWorker"]).returncode
    output, _ = run.communicate(timeout=900)
    assert killed == 0, "no training worker was running"
    assert run.returncode == 0, output[-3000:]
    found = rows(tmp_path / "kill" / "results")
    assert [(r["kind"], r["status"]) for r in found] == [("finetune", "ok"), ("pretrain", "ok")]
    history = json.loads(found[1]["metrics"])["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]  # every epoch once: resumed, not restarted


def test_a_killed_worker_of_two_points_sharing_a_trial_resumes_the_second_and_runs_nothing_twice(tmp_path):
    args = [*TINY, "grid.points=[{label_set:random_250},{label_set:random_500}]", "grid.tasks=[sun397]",
            "grid.seeds=[0]", "resources.points_per_trial=2", "pretrain.epochs=4", f"storage={tmp_path}",
            "run=shared"]  # fmt: skip
    results, train = tmp_path / "shared" / "results", tmp_path / "shared" / "train"
    run = start(*args)
    wait_for(lambda: results.is_dir() and len(list(results.glob("*.parquet"))) == 2, "the first point's rows")
    first_point = {p.name: p.stat().st_mtime_ns for p in results.glob("*.parquet")}
    seen = {json.dumps(c, sort_keys=True) for c in registered_checkpoints(train, "points-*")}
    wait_for(lambda: any("lr" in c["metrics"] and json.dumps(c, sort_keys=True) not in seen
                         for c in registered_checkpoints(train, "points-*")),
             "a checkpoint of the second point's pretraining")  # fmt: skip
    killed = subprocess.run(["pkill", "-9", "-f", "ray::RayTrainWorker"]).returncode
    output, _ = run.communicate(timeout=900)
    assert killed == 0, "no training worker was running"
    assert run.returncode == 0, output[-3000:]
    found = rows(results)
    assert len(found) == 4 and all(r["status"] == "ok" for r in found)
    assert len({r["trial_id"] for r in found}) == 1  # one trial ran both points
    histories = {r["label_set"]: json.loads(r["metrics"])["history"] for r in found if r["kind"] == "pretrain"}
    assert all([h["epoch"] for h in history] == [1, 2, 3, 4] for history in histories.values())
    assert any("resumed_after_epoch" in h for h in histories["random_500"])  # from its own checkpoint
    assert not any("resumed_after_epoch" in h for h in histories["random_250"])
    assert {name: (results / name).stat().st_mtime_ns for name in first_point} == first_point  # not run again


def test_killed_detection_worker_resumes_from_its_detector_checkpoint(tmp_path):
    args = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[pascal_det]", "grid.seeds=[0]",
            "detect.iterations=200", "detect.checkpoint_interval=10"]  # fmt: skip
    run = start(*args, f"storage={tmp_path}", "run=kill")
    detector_checkpoints = lambda: [  # noqa: E731  (the group's first checkpoints are its pretraining's)
        c for c in registered_checkpoints(tmp_path / "kill" / "train", "point-*") if "unit_id" in c["metrics"]
    ]
    wait_for(detector_checkpoints, "a detector checkpoint")
    killed = subprocess.run(["pkill", "-9", "-f", "ray::RayTrainWorker"]).returncode
    output, _ = run.communicate(timeout=900)
    assert killed == 0, "no training worker was running"
    assert run.returncode == 0, output[-3000:]
    (detection,) = [r for r in rows(tmp_path / "kill" / "results") if r["kind"] == "finetune"]
    metrics = json.loads(detection["metrics"])
    assert metrics["iterations"] == 200 and metrics["resumed_from"] >= 10  # resumed, not restarted
    assert len(list((tmp_path / "kill" / "train").glob("point-*/checkpoint_2*"))) == 2  # older ones deleted


def test_detector_trains_as_two_ranks_of_a_ray_train_worker_group(tmp_path):
    args = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[pascal_det]", "grid.seeds=[0]",
            "resources.num_workers=2", f"storage={tmp_path}", "run=ddp"]  # fmt: skip
    result = sweep(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pretrain, detection = sorted(rows(tmp_path / "ddp" / "results"), key=lambda r: r["kind"] != "pretrain")
    assert pretrain["status"] == detection["status"] == "ok" and json.loads(detection["hardware"])["num_workers"] == 2
    metrics = json.loads(detection["metrics"])
    assert metrics["iterations"] == 4 and 0 <= metrics["map"] <= 1 and metrics["images_per_s"] > 0


def test_interrupted_driver_resumes_without_duplicates(tmp_path):
    args = [*TINY, "grid.points=[{label_set:random_250},{label_set:random_500}]", "grid.tasks=[sun397]",
            "grid.seeds=[0,1]", "ray.max_concurrent_trials=1", f"storage={tmp_path}", "run=interrupt"]  # fmt: skip
    results = tmp_path / "interrupt" / "results"
    run = start(*args)
    wait_for(lambda: results.is_dir() and any(results.glob("pretrain-*.parquet")), "the first pretraining row")
    run.send_signal(signal.SIGINT)
    try:
        run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.kill()
        run.communicate()
    before = {p.name: p.stat().st_mtime_ns for p in results.glob("*.parquet")}
    assert 1 <= len(before) < 6
    resumed = sweep(*args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    found = rows(results)
    assert len(found) == 6 and len({r["unit_id"] for r in found}) == 6  # 2 pretrainings, 4 fine-tunings
    assert all(r["status"] == "ok" for r in found)
    assert {name: (results / name).stat().st_mtime_ns for name in before} == before  # finished work kept


def test_two_node_cluster_with_storage_outside_the_working_directory(tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        driver_dir, storage = tmp_path / "driver", tmp_path / "shared" / "runs"
        driver_dir.mkdir()
        args = [*TINY, "grid.points=[{label_set:random_250},{label_set:up_down_127}]", "grid.tasks=[sun397]",
                "grid.seeds=[0]", f"ray.address={cluster.address}", f"storage={storage}", "run=cluster"]  # fmt: skip
        result = sweep(*args, cwd=driver_dir)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == str(storage / "cluster" / "results")
        found = rows(storage / "cluster" / "results")
        assert len(found) == 4 and all(r["status"] == "ok" for r in found)
        assert not any(driver_dir.iterdir())  # nothing was written where the driver ran
    finally:
        cluster.shutdown()


FULL_DISK_SWEEP = """
import json, os, shutil, subprocess, sys, time

mount, out, args = sys.argv[1], sys.argv[2], sys.argv[3:]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m", "tmpfs", mount], check=True)
results, filler = os.path.join(mount, "full", "results"), os.path.join(mount, "filler")
command = [sys.executable, "-m", "orchestrator.run", *args, f"storage={mount}", "run=full"]
first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
deadline = time.monotonic() + 900
while first.poll() is None and time.monotonic() < deadline:
    if os.path.isdir(results) and any(name.startswith("pretrain-") for name in os.listdir(results)):
        break
    time.sleep(0.5)
descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(descriptor, b"x" * 65536)
except OSError:
    os.close(descriptor)
output, _ = first.communicate(timeout=1800)
shutil.copytree(results, os.path.join(out, "while_full"))
os.remove(filler)
second = subprocess.run(command, capture_output=True, text=True, timeout=1800)
shutil.copytree(results, os.path.join(out, "after"))
print(json.dumps({"first": [first.returncode, output[-6000:]], "second": [second.returncode, second.stdout[-6000:]]}))
"""


def test_a_disk_that_fills_mid_sweep_loses_nothing_and_the_rerun_finishes(tmp_path):
    from test_store_faults import in_own_mount_namespace

    mount, out = tmp_path / "small-disk", tmp_path / "copies"
    mount.mkdir()
    args = [*TINY, "grid.points=[{label_set:random_250},{label_set:random_500}]", "grid.tasks=[sun397]",
            "grid.seeds=[0,1]", "ray.max_concurrent_trials=1", "resources.max_failures=1"]  # fmt: skip
    done = in_own_mount_namespace(sys.executable, "-c", FULL_DISK_SWEEP, str(mount), str(out), *args, timeout=3600)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    (first_status, first_output), (second_status, second_output) = report["first"], report["second"]
    assert first_status != 0, first_output  # the full disk stopped units: the run says so
    assert "No space left on device" in first_output
    while_full = rows(out / "while_full")  # every file there reads whole
    assert [r["status"] for r in while_full if r["kind"] == "pretrain"][:1] == ["ok"]
    assert all(r["status"] == "ok" or "No space left" in (r["error"] or "") for r in while_full)
    assert second_status == 0, second_output
    after = rows(out / "after")
    assert len(after) == 6 and len({r["unit_id"] for r in after}) == 6 and all(r["status"] == "ok" for r in after)
    finished_before = {r["unit_id"]: r["finished_at"] for r in while_full if r["status"] == "ok"}
    assert {r["unit_id"]: r["finished_at"] for r in after if r["unit_id"] in finished_before} == finished_before


def test_a_second_driver_exits_at_once_and_a_killed_one_is_taken_over(tmp_path):
    args = [*ONE_POINT, "pretrain.epochs=3", f"storage={tmp_path}", "run=held"]
    first = start(*args)
    wait_for(lambda: (tmp_path / "held" / "driver.json").is_file(), "the first driver's claim")
    started = time.monotonic()
    second = sweep(*args, timeout=300)
    assert second.returncode == 2 and time.monotonic() - started < 120
    assert f"error: run held is held by another driver: pid {first.pid} on " in second.stderr
    wait_for(lambda: registered_checkpoints(tmp_path / "held" / "train", "point-*"), "a pretraining checkpoint")
    first.kill()  # SIGKILL: no clean-up, its claim stays
    first.communicate()
    assert (tmp_path / "held" / "driver.json").is_file()
    third = sweep(*args)
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    assert f"took over run held from a driver that is gone: pid {first.pid}" in third.stdout
    found = rows(tmp_path / "held" / "results")
    assert [(r["kind"], r["status"]) for r in found] == [("finetune", "ok"), ("pretrain", "ok")]
    assert [h["epoch"] for h in json.loads(found[1]["metrics"])["history"]] == [1, 2, 3]  # resumed, not restarted
    assert not (tmp_path / "held" / "driver.json").exists()  # given back

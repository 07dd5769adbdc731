"""Grids on multi-node Ray clusters on this machine (slow: `pytest -m slow`).

The autoscaler: Ray's fake multinode provider runs cluster.yaml's own node types (its CPU-only head, its GPU worker
types with a fake GPU each) under the autoscaler that `ray up` starts on a head (`ray start --head
--autoscaling-config`), with token authentication on. A grid on it makes the autoscaler add a worker, and the worker
goes once idle. (``ray up`` itself cannot take the fake provider here: Ray 2.60's wheel lacks the
``fake_multi_node/example.yaml`` it reads.)

A lost node: the worker node (its raylet) that runs a grid point's Tune trial is killed mid-pretraining. Tune retries
the trial, which resumes the pretraining from its checkpoint on the other node; the sweep goes on without a rerun, the store ends with exactly the rows of a clean run, and
no placement group or checkpoint of the failed attempt is left. Then the driver is killed and the command rerun.
The trainers ask for CPUs: the fake GPUs are Ray resources without CUDA behind them."""

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL_RAY
from test_deploy import cluster_config
from test_sweep import TINY, rows, sweep
from test_sweep_faults import registered_checkpoints, start, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group(LOCAL_RAY)]
RAY = str(Path(sys.executable).with_name("ray"))
POINTS = ["grid.tasks=[sun397]", "grid.seeds=[0]", "report=false"]


def fake_cluster(config: dict, gcs_address: str) -> dict:
    """cluster.yaml's node types on the fake multinode provider: the head's resources as given, each worker type at
    most one node of 1 CPU and 1 (fake) GPU; idle workers go after 6 s."""
    types = {}
    for name, node_type in config["available_node_types"].items():
        head = name == config["head_node_type"]
        types[name] = {
            "resources": node_type["resources"] if head else {"CPU": 1, "GPU": 1},
            "node_config": {}, "min_workers": 0, "max_workers": 0 if head else 1,
            **({"priority": node_type["priority"]} if "priority" in node_type else {}),
        }  # fmt: skip
    empty = ["initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
             "head_start_ray_commands", "worker_start_ray_commands", "cluster_synced_files", "rsync_exclude",
             "rsync_filter"]  # fmt: skip
    return {
        "cluster_name": config["cluster_name"], "max_workers": 2, "upscaling_speed": 1.0, "idle_timeout_minutes": 0.1,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True, "disable_node_updaters": True,
                     "disable_launch_config_check": True, "gcs_address": gcs_address},
        "auth": {}, "docker": {}, "file_mounts": {}, "file_mounts_sync_continuously": False,
        "available_node_types": types, "head_node_type": config["head_node_type"], **{key: [] for key in empty},
    }  # fmt: skip


NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
print("nodes:", json.dumps([{"alive": n["Alive"], "gpus": n["Resources"].get("GPU", 0), "cpus": n["Resources"].get("CPU", 0),
                   "head": "node:__internal_head__" in n["Resources"]} for n in ray.nodes()]))
"""


def nodes(address: str, env: dict) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", NODES, address], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (found,) = [line for line in done.stdout.splitlines() if line.startswith("nodes: ")]  # the autoscaler prints too
    return json.loads(found.removeprefix("nodes: "))


def test_the_autoscaler_adds_a_gpu_worker_for_a_grid_and_removes_it_when_idle(tmp_path):
    port = 47000 + os.getpid() % 1000
    address = f"127.0.0.1:{port}"
    config = fake_cluster(cluster_config(), address)
    (tmp_path / "fake.yaml").write_text(yaml.safe_dump(config))
    head_cpus = config["available_node_types"][config["head_node_type"]]["resources"]["CPU"]
    (tmp_path / "token").write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}  # fmt: skip
    head = [RAY, "start", "--head", f"--port={port}", "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
            f"--dashboard-port={port + 1}", f"--num-cpus={head_cpus}", f"--autoscaling-config={tmp_path / 'fake.yaml'}"]  # fmt: skip
    subprocess.run(head, env=env, check=True, capture_output=True, timeout=300)
    try:
        assert not any(n["gpus"] for n in nodes(address, env))  # no GPU worker yet
        without_token = {k: v for k, v in env.items() if not k.startswith("RAY_AUTH")} | {"HOME": str(tmp_path)}
        refused = subprocess.run([sys.executable, "-c", NODES, address], env=without_token, capture_output=True,
                                 text=True, timeout=120)  # fmt: skip
        assert refused.returncode != 0 and "auth" in refused.stderr.lower()  # a client without the token is refused

        storage = tmp_path / "runs"
        args = [*TINY, "grid.points=[{label_set:random_250}]", *POINTS, f"ray.address={address}", f"storage={storage}"]
        done = sweep(*args, "run=autoscaled", env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        found = rows(storage / "autoscaled" / "results")
        assert [(r["kind"], r["status"]) for r in found] == [("finetune", "ok"), ("pretrain", "ok")]
        assert any(n["gpus"] == 1 for n in nodes(address, env))  # the autoscaler added a GPU worker
        deadline = time.monotonic() + 180
        while any(n["alive"] and n["gpus"] for n in nodes(address, env)):
            assert time.monotonic() < deadline, "the idle GPU worker was not removed"
            time.sleep(3)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def raylet_running(process: str) -> int:
    """The pid of the raylet whose node runs the Ray process named ``process`` (the process's parent)."""
    found = subprocess.run(["pgrep", "-f", f"^{process}"], capture_output=True, text=True).stdout.split()
    return int(Path(f"/proc/{found[0]}/stat").read_text().split(") ")[1].split()[1])


def live_training_groups(samples: list, stop: threading.Event) -> None:
    """Samples how many Ray Train worker groups hold a placement group (bundles with CPUs; a Tune trial's has none)."""
    import ray

    while not stop.wait(1):
        table = ray.util.placement_group_table().values()
        samples.append(sum(
            1 for group in table
            if group["state"] != "REMOVED" and any(b.get("CPU", 0) > 0 for b in group["bundles"].values())
        ))  # fmt: skip


def orphaned_checkpoints(train_dir: Path) -> list[str]:
    """Checkpoint folders of finished Train runs that their checkpoint manager does not hold."""
    orphans = []
    for run in train_dir.iterdir():
        held = {c["checkpoint_dir_name"] for c in registered_checkpoints(train_dir, run.name)}
        orphans += [str(p) for p in run.glob("checkpoint_*") if p.is_dir() and p.name not in held]
    return orphans


def test_a_lost_node_costs_only_its_unfinished_work_and_a_killed_driver_is_resumed(tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    # A head without room for a trial (each takes 1 MiB of memory) or a training worker: both go to the workers.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "memory": 2**19})
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    samples, stop = [], threading.Event()
    sampler = threading.Thread(target=live_training_groups, args=(samples, stop), daemon=True)
    try:
        storage = tmp_path / "runs"
        # One point a trial (not the embedded scale's auto): the node of a point's own trial is lost
        common = [*TINY, "pretrain.epochs=3", *POINTS, f"ray.address={cluster.address}", f"storage={storage}",
                  "ray.max_concurrent_trials=1", "resources.points_per_trial=1"]  # fmt: skip
        lost = [*common, "grid.points=[{label_set:random_250},{label_set:up_down_127}]", "run=lost-node"]
        sampler.start()
        run = start(*lost)
        wait_for(lambda: registered_checkpoints(storage / "lost-node" / "train", "point-*"), "a checkpoint")
        raylet = raylet_running("ray::ImplicitFunc")  # the node of the grid point's Tune trial
        (victim,) = [n for n in workers if n.all_processes["raylet"][0].process.pid == raylet]
        cluster.remove_node(victim, allow_graceful=False)
        output, _ = run.communicate(timeout=1800)
        assert run.returncode == 0, output[-4000:]  # no rerun of the command was needed
        assert list((storage / "lost-node" / "tune").glob("*/error.txt"))  # the trial failed with its node, and was retried
        found = rows(storage / "lost-node" / "results")
        assert len(found) == 4 and len({r["unit_id"] for r in found}) == 4 and all(r["status"] == "ok" for r in found)
        histories = [json.loads(r["metrics"])["history"] for r in found if r["kind"] == "pretrain"]
        assert all([h["epoch"] for h in history] == [1, 2, 3] for history in histories)  # each epoch ran once
        resumed = [[h["resumed_after_epoch"] for h in history if "resumed_after_epoch" in h] for history in histories]
        assert sorted(map(len, resumed)) == [0, 1]  # the pretraining on the lost node resumed from its checkpoint
        assert max(samples) <= 1  # one grid point at a time: a failed attempt's placement group did not linger
        assert orphaned_checkpoints(storage / "lost-node" / "train") == []

        killed = [*common, "grid.points=[{label_set:random_500}]", "run=killed-driver"]
        run = start(*killed)
        wait_for(lambda: registered_checkpoints(storage / "killed-driver" / "train", "point-*"), "a checkpoint")
        run.send_signal(signal.SIGKILL)
        run.communicate()
        again = sweep(*killed)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        found = rows(storage / "killed-driver" / "results")
        assert [(r["kind"], r["status"]) for r in found] == [("finetune", "ok"), ("pretrain", "ok")]
        history = json.loads(found[1]["metrics"])["history"]
        assert [h["epoch"] for h in history] == [1, 2, 3] and any("resumed_after_epoch" in h for h in history)
        assert orphaned_checkpoints(storage / "killed-driver" / "train") == []
        stop.set()
        sampler.join()
        wait_for(lambda: not [g for g in ray.util.placement_group_table().values() if g["state"] != "REMOVED"],
                 "the killed driver's placement groups to go", timeout=120)  # fmt: skip
    finally:
        stop.set()
        ray.shutdown()
        cluster.shutdown()

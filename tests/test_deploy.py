"""The launch routes: cluster.yaml (AWS), the image (Dockerfile), the KubeRay RayJob and the Slurm script.

Their security is read from the files themselves: no port open to 0.0.0.0/0 (SSH only from the CIDR the user
sets), token authentication on, the dashboard on loopback (on Kubernetes, where KubeRay's operator must reach it,
on the pod network behind a NetworkPolicy). Each route's grid command is planned by the real CLI (a dry run), the
security group script runs against a real EC2 API on loopback (moto's server), and the Slurm script runs whole on
this machine, with ``srun`` and ``scontrol`` stood in for by scripts that run their command here."""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import LOCAL_RAY
from test_sweep import TINY, rows

from orchestrator.run import main

ROOT = Path(__file__).resolve().parents[1]
PINNED_RAY = re.search(r'"ray\[[^\]]*\]==([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
WORLD = ("0.0.0.0/0", "::/0")


def cluster_config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def kuberay_documents() -> list[dict]:
    return list(yaml.safe_load_all((ROOT / "deploy" / "kuberay" / "rayjob.yaml").read_text()))


def grid_arguments(command: str) -> list[str]:
    """The key=value arguments of a documented ``python -m orchestrator.run ...`` command."""
    words = shlex.split(command)
    return words[words.index("orchestrator.run") + 1 :]


def test_cluster_yaml_passes_rays_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = cluster_config()
    validate_config(prepare_config(config))
    config["available_node_types"]["gpu_spot"]["max_worker"] = 8  # a typo Ray must reject
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(config))


def test_cluster_yaml_opens_nothing_to_the_world_and_turns_token_authentication_on():
    config = cluster_config()
    for name, node_type in config["available_node_types"].items():
        # Without SecurityGroupIds on every node type Ray creates a group of its own, with SSH open to 0.0.0.0/0.
        assert node_type["node_config"].get("SecurityGroupIds"), f"{name} has no SecurityGroupIds"
    assert "security_group" not in config["provider"]  # a group Ray would create and open SSH on
    assert not any(world in yaml.safe_dump(config) for world in WORLD)
    docker = config["docker"]
    assert "-e RAY_AUTH_MODE=token" in docker["run_options"]
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    (head_start,) = [c for c in config["head_start_ray_commands"] if "ray start" in c]
    assert "--dashboard-host=127.0.0.1" in head_start and "RAY_AUTH_MODE=disabled" not in yaml.safe_dump(config)
    assert docker["image"].endswith(f":{PINNED_RAY}")


def test_the_image_builds_from_rays_image_of_the_pinned_version_and_compiles_mmcvs_cuda_ops():
    dockerfile = (ROOT / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert base == f"rayproject/ray:{PINNED_RAY}-py311-gpu"
    assert "FORCE_CUDA=1" in dockerfile and "./setup.sh" in dockerfile and "SETUP_TESTS=0" in dockerfile
    assert "cuda-nvcc-13-0" in dockerfile  # torch 2.13's CUDA: mmcv's ops must compile with the same major version
    assert not re.search(r"^\s*EXPOSE", dockerfile, re.M) and "RAY_AUTH_MODE=disabled" not in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "data", "runs", ".git"} <= set(ignored)  # the build context holds no data or environment


def test_the_security_group_script_allows_ssh_from_the_given_cidr_only(monkeypatch, tmp_path):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_ENDPOINT_URL": f"http://{host}:{port}"}  # fmt: skip
        script = [sys.executable, str(ROOT / "deploy" / "aws" / "security_group.py"), "--region", "us-west-2"]
        made = subprocess.run([*script, "--ssh-cidr", "203.0.113.7/32"], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        group_id = made.stdout.strip().splitlines()[-1]
        again = subprocess.run([*script, "--ssh-cidr", "203.0.113.7/32"], env=env, capture_output=True, text=True)
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == group_id  # found, not made twice
        ec2 = boto3.client("ec2", region_name="us-west-2", endpoint_url=f"http://{host}:{port}",
                           aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        (group,) = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        rules = group["IpPermissions"]
        assert [(r["IpProtocol"], r.get("FromPort"), [x["CidrIp"] for x in r["IpRanges"]]) for r in rules
                if r["IpRanges"]] == [("tcp", 22, ["203.0.113.7/32"])]  # fmt: skip
        assert [[p["GroupId"] for p in r["UserIdGroupPairs"]] for r in rules if r["UserIdGroupPairs"]] == [[group_id]]
        world = subprocess.run([*script, "--ssh-cidr", "0.0.0.0/0"], env=env, capture_output=True, text=True)
        assert world.returncode == 2 and "0.0.0.0/0 is every address: give yours" in world.stderr
    finally:
        server.stop()


def test_the_kuberay_job_turns_token_authentication_on_and_keeps_the_dashboard_in_the_cluster():
    documents = {d["kind"]: d for d in kuberay_documents()}
    job = documents["RayJob"]
    assert job["apiVersion"] == "ray.io/v1"
    cluster = job["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == PINNED_RAY and cluster["authOptions"]["mode"] == "token"
    head = cluster["headGroupSpec"]
    # KubeRay's operator polls the job through the head's dashboard, so it listens on the pod network: only the
    # operator and the cluster's own pods may reach it, through a ClusterIP service (no LoadBalancer, no NodePort).
    assert head.get("serviceType", "ClusterIP") == "ClusterIP"
    policy = documents["NetworkPolicy"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"ray.io/originated-from-cr-name": job["metadata"]["name"]}
    assert "Ingress" in policy["spec"]["policyTypes"]
    assert not any(world in yaml.safe_dump(documents) for world in WORLD)
    for group in [head, *cluster["workerGroupSpecs"]]:
        for container in group["template"]["spec"]["containers"]:
            assert container["image"].endswith(f":{PINNED_RAY}")
            assert not any(port.get("hostPort") for port in container.get("ports", []))
    gpus = [g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
            for g in cluster["workerGroupSpecs"]]  # fmt: skip
    assert gpus and all(int(n) >= 1 for n in gpus)


def test_the_slurm_script_keeps_the_dashboard_on_loopback_with_token_authentication():
    script = (ROOT / "deploy" / "slurm" / "transfer-grids.sbatch").read_text()
    assert "--dashboard-host=127.0.0.1" in script and "export RAY_AUTH_MODE=token" in script
    assert "0.0.0.0" not in script and "RAY_AUTH_MODE=disabled" not in script


@pytest.mark.parametrize("route", ["cluster.yaml", "kuberay", "slurm"])
def test_each_routes_grid_command_plans(route, tmp_path, capsys):
    if route == "cluster.yaml":
        text = (ROOT / "cluster.yaml").read_text()
        command = re.search(r"ray exec cluster.yaml '(.+?)'", text.replace("\\\n#", " "), re.S).group(1)
    elif route == "kuberay":
        command = next(d for d in kuberay_documents() if d["kind"] == "RayJob")["spec"]["entrypoint"]
    else:
        text = (ROOT / "deploy" / "slurm" / "transfer-grids.sbatch").read_text()
        command = "python -m orchestrator.run " + re.search(
            r"sbatch \S+ (.+?storage=\S+)", text.replace("\\\n#", " "), re.S
        ).group(1)
    arguments = [a for a in grid_arguments(command) if not a.startswith(("storage=", "ray.address="))]
    assert main([*arguments, f"storage={tmp_path}", "dry_run=true"]) == 0, capsys.readouterr().err
    assert "pretrainings" in capsys.readouterr().out


STAND_INS = {
    # srun: drop the options that pick nodes and tasks, run the command here (exec, so that a signal reaches it as
    # Slurm's would reach the task).
    "srun": """#!/usr/bin/env bash
while [[ $# -gt 0 && $1 == -* ]]; do
    case $1 in --nodes|--ntasks|-w|-N|-n|--nodelist) shift 2 ;; *) shift ;; esac
done
exec "$@"
""",
    "scontrol": """#!/usr/bin/env bash
[ "$1 $2" = "show hostnames" ] && tr ',' '\\n' <<<"$3"
""",
}


@pytest.mark.slow
@pytest.mark.xdist_group(LOCAL_RAY)
def test_the_slurm_script_starts_ray_on_every_node_runs_the_grid_and_stops_ray(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in STAND_INS.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    home, storage = tmp_path / "home", tmp_path / "runs"
    port = 46000 + os.getpid() % 1000
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(home), "SLURM_JOB_ID": "4242",
           "SLURM_JOB_NODELIST": "node-a,node-b", "SLURM_CPUS_PER_TASK": "1", "SLURM_SUBMIT_DIR": str(ROOT),
           "RAY_PORT": str(port), "RAY_DASHBOARD_PORT": str(port + 1)}  # fmt: skip
    arguments = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[sun397]", "grid.seeds=[0]",
                 f"storage={storage}", "run=slurm"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(["bash", str(ROOT / "deploy" / "slurm" / "transfer-grids.sbatch"), *arguments], env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 node(s), token in" in done.stdout
    found = rows(storage / "slurm" / "results")
    assert [(r["kind"], r["status"]) for r in found] == [("finetune", "ok"), ("pretrain", "ok")]
    assert not list((home / ".ray").glob("transfer-grids-*.token"))  # the job's token is gone with it
    time.sleep(5)
    left = subprocess.run(["pgrep", "-f", f"gcs_server.*--gcs_server_port={port}"], capture_output=True, text=True)
    assert left.stdout == "", f"Ray's head outlived the job ({time.monotonic() - started:.0f} s)"
    raylets = subprocess.run(["pgrep", "-f", f"raylet.*--gcs-address=[^ ]*:{port}"], capture_output=True, text=True)
    assert raylets.stdout == ""

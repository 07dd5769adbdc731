"""One driver per run, on a local disk and on an object store (a real S3 API on loopback): a live holder is
named and kept, a dead one is taken over, two drivers that start together end with one holder, and a holder
whose claim was taken stops."""

import json
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pyarrow as pa
import pytest

from orchestrator import lock
from orchestrator.lock import DriverLock, RunHeld
from orchestrator.run import main
from orchestrator.store import filesystem_of


@pytest.fixture(autouse=True)
def quick_heartbeats(monkeypatch):
    monkeypatch.setattr(lock, "SETTLE_S", 0.2)
    monkeypatch.setattr(lock, "HEARTBEAT_S", 0.1)
    monkeypatch.setattr(lock, "STALE_AFTER_S", 2.0)


@pytest.fixture(params=["local", "s3"])
def run_dir(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "runs" / "r")
    return request.getfixturevalue("s3_storage") + "/r"


def claim_of(run_dir: str) -> dict:
    return DriverLock(run_dir, "r").holder()  # as a driver reads it: again when read mid-rewrite


def plant_claim(run_dir: str, **fields) -> None:
    """A claim as another driver would have left it."""
    claim = {"token": "other", "host": "gpu-node-7", "pid": 4242, "started_at": time.time() - 600,
             "heartbeat_at": time.time(), "command": "python -m orchestrator.run grid=huh2016"}  # fmt: skip
    filesystem, path = filesystem_of(run_dir)
    filesystem.create_dir(path, recursive=True)
    with filesystem.open_output_stream(f"{path}/driver.json") as out:
        out.write(json.dumps(claim | fields).encode())


def test_a_live_driver_keeps_the_run_and_a_second_is_told_who_holds_it(run_dir):
    with DriverLock(run_dir, "r") as first:
        beat = claim_of(run_dir)["heartbeat_at"]
        time.sleep(0.5)
        assert claim_of(run_dir)["heartbeat_at"] > beat  # it beats
        with pytest.raises(RunHeld) as held:
            DriverLock(run_dir, "r").acquire()
        message = str(held.value)
        assert f"pid {first.claim['pid']} on {first.claim['host']}" in message and "kill" in message
        assert re.search(r"last heartbeat [01] s ago", message) and "run=" in message
        assert claim_of(run_dir)["token"] == first.claim["token"]
    filesystem, path = filesystem_of(run_dir)
    assert filesystem.get_file_info(f"{path}/driver.json").type.name == "NotFound"  # given back


def test_a_live_claim_read_while_it_is_rewritten_is_read_again_not_taken(run_dir, monkeypatch):
    with DriverLock(run_dir, "r") as first:
        second = DriverLock(run_dir, "r")
        opened = second.filesystem.open_input_stream
        reads = []

        def open_input_stream(path):  # the first read is torn, as while a heartbeat's copy replaces the claim
            reads.append(path)
            return pa.BufferReader(b'{"token": "') if len(reads) == 1 else opened(path)

        monkeypatch.setattr(second, "filesystem", SimpleNamespace(open_input_stream=open_input_stream))
        with pytest.raises(RunHeld, match=f"pid {first.claim['pid']}"):
            second.acquire()
        assert len(reads) == 2 and claim_of(run_dir)["token"] == first.claim["token"] and not first.lost


def test_a_driver_on_another_host_is_live_until_its_heartbeat_is_stale(run_dir):
    plant_claim(run_dir)
    with pytest.raises(RunHeld, match="pid 4242 on gpu-node-7, started"):
        DriverLock(run_dir, "r").acquire()
    plant_claim(run_dir, heartbeat_at=time.time() - 3)
    taker = DriverLock(run_dir, "r")
    assert taker.acquire()["host"] == "gpu-node-7"
    assert claim_of(run_dir)["token"] == taker.claim["token"]
    taker.release()


def test_a_dead_driver_on_this_host_is_taken_over_at_once(run_dir):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = DriverLock(run_dir, "r")
    plant_claim(run_dir, host=me.claim["host"], pid=int(gone.stdout), heartbeat_at=time.time())
    assert me.acquire()["pid"] == int(gone.stdout)
    me.release()


def test_of_two_drivers_that_start_together_one_goes_on(run_dir):
    drivers = [DriverLock(run_dir, "r") for _ in range(2)]
    start = threading.Barrier(2)

    def take(driver):
        start.wait()
        try:
            driver.acquire()
            return driver
        except RunHeld:
            return None

    with ThreadPoolExecutor(2) as pool:
        holders = [d for d in pool.map(take, drivers) if d is not None]
    assert len(holders) == 1 and claim_of(run_dir)["token"] == holders[0].claim["token"]
    holders[0].release()


def test_a_holder_whose_claim_was_taken_stops(run_dir):
    lost = []
    holder = DriverLock(run_dir, "r", on_lost=lambda: lost.append(True))
    holder.acquire()
    plant_claim(run_dir, token="usurper")
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lost == [True] and holder.lost
    holder.release()
    assert claim_of(run_dir)["token"] == "usurper"  # release leaves another driver's claim alone


def test_the_command_exits_before_ray_when_the_run_is_held(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(lock, "STALE_AFTER_S", 60.0)  # planning the grid takes seconds
    plant_claim(str(tmp_path / "held"))
    status = main(["grid=classes_vs_examples", f"storage={tmp_path}", "run=held", "data.imagenet=/nowhere"])
    assert status == 2
    error = capsys.readouterr().err
    assert error.startswith("error: run held is held by another driver: pid 4242 on gpu-node-7")
    assert not (tmp_path / "held" / "config.yaml").exists()

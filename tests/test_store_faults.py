"""A row is written whole or not at all, whatever fails: a full disk (a real tmpfs of 1 MiB, mounted in a user
and mount namespace) fails the write at once with the cause and leaves nothing a reader would count; an object
store that drops every connection for a while (a real S3 API on loopback behind a proxy that refuses) gets
the row once it is back; one that stays away longer than the retries gets nothing partial. Every store is read
back by an independent reader (boto3, or the folder listing)."""

import io
import json
import shutil
import subprocess
import sys
import threading
import time

import boto3
import pyarrow.parquet as pq
import pytest

from orchestrator import store as store_module
from orchestrator.store import Store

ROOT = store_module.__file__.rsplit("/", 2)[0]


def row(unit_id: str, padding: int = 0) -> dict:
    return {"run": "r", "grid": "g", "kind": "pretrain", "unit_id": unit_id, "pretrain_id": unit_id, "status": "ok",
            "value": 0.5, "config": "x" * padding}  # fmt: skip


def rows_in_bucket(storage: str) -> list[str]:
    """The unit ids of the result files in the bucket, read by boto3 (not pyarrow), hidden files left out."""
    bucket, prefix = storage.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    results = [k for k in keys if k.endswith(".parquet") and not k.rsplit("/", 1)[1].startswith(".")]
    bodies = [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in results]
    return sorted(pq.read_table(io.BytesIO(body))["unit_id"][0].as_py() for body in bodies)


def test_rows_written_while_the_object_store_refuses_for_a_while_arrive_once(flaky_s3, monkeypatch):
    storage, proxy = flaky_s3
    store = Store(f"{storage}/r/results")
    store.write(row("a"))
    proxy.refuse()
    threading.Timer(3.0, proxy.refusing.clear).start()
    started = time.monotonic()
    store.write(row("b"))  # tried again until the store is back
    assert time.monotonic() - started >= 2.5
    store.write(row("b"))  # a rerun's row replaces it
    assert rows_in_bucket(storage) == ["a", "b"]


def test_an_object_store_away_longer_than_the_retries_gets_nothing_partial(flaky_s3, monkeypatch):
    monkeypatch.setattr(store_module, "WRITE_RETRY_S", 0.0)  # one try: the S3 client's own retries take 12 s
    storage, proxy = flaky_s3
    store = Store(f"{storage}/r/results")
    store.write(row("a"))
    proxy.refuse()
    with pytest.raises(OSError):
        store.write(row("b", padding=10**6))
    proxy.refusing.clear()
    assert rows_in_bucket(storage) == ["a"]
    store.write(row("b"))
    assert rows_in_bucket(storage) == ["a", "b"]


FULL_DISK = """
import errno, json, os, subprocess, sys
from orchestrator.store import Store
from tests.test_store_faults import row

mount = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount], check=True)
store = Store(mount + "/results")
store.write(row("a"))
filler = os.open(mount + "/filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(filler, b"x" * 4096)
except OSError:
    os.close(filler)
try:
    store.write(row("b", padding=200_000))
    outcome = {"written": True}
except OSError as error:
    outcome = {"errno": error.errno, "message": str(error)}
outcome["while_full"] = sorted(os.listdir(mount + "/results"))
outcome["rows_while_full"] = sorted(store.read()["unit_id"].to_pylist())
os.remove(mount + "/filler")
store.write(row("b", padding=200_000))
outcome["rows_after"] = sorted(store.read()["unit_id"].to_pylist())
print(json.dumps(outcome))
"""


def in_own_mount_namespace(*command: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs the command as root of a new user and mount namespace, where it may mount a tmpfs; skips where the
    kernel or the container allows no such namespace."""
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("a small full disk needs `unshare -rm` (user namespaces), which this machine does not allow")
    return subprocess.run(["unshare", "-rm", *command], capture_output=True, text=True, **kwargs)


def test_a_full_disk_fails_the_write_at_once_and_leaves_nothing_a_reader_counts(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = in_own_mount_namespace(sys.executable, "-c", FULL_DISK, str(mount), cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["errno"] == 28 and "No space left on device" in outcome["message"]  # ENOSPC, not retried
    assert outcome["while_full"] == ["pretrain-a.parquet"]  # no partial file, no temporary left behind
    assert outcome["rows_while_full"] == ["a"]
    assert outcome["rows_after"] == ["a", "b"]


@pytest.mark.parametrize("snapshot, kept", [("", False), ('{"ray_version": "0.0.1"}', False), (None, True)])
def test_a_train_run_state_that_ray_cannot_read_is_set_aside(tmp_path, snapshot, kept):
    """An empty checkpoint list (a disk that filled while Ray Train rewrote it) or one another Ray wrote: Ray Train
    would refuse the run, so it is renamed and the group starts afresh; a readable one stays for the resume."""
    import ray

    from orchestrator.trial import RUN_STATE_FILE, _set_aside_unreadable_run_state

    state = tmp_path / "point-0-group0" / RUN_STATE_FILE
    state.parent.mkdir()
    body = json.dumps({"ray_version": ray.__version__, "checkpoint_results": []}) if snapshot is None else snapshot
    state.write_text(body)
    _set_aside_unreadable_run_state(str(state.parent))
    assert state.is_file() == kept
    aside = list(state.parent.glob(f"{RUN_STATE_FILE}.unreadable-*"))
    assert len(aside) == (0 if kept else 1) and (kept or aside[0].read_text() == body)


def test_a_pretraining_published_before_its_row_was_written_gets_its_row_without_training_again(tmp_path):
    """A worker group that died between publishing the network and writing its row: the restarted group writes the
    row from the history stored with the network, and does not pretrain again (its loop config here could not)."""
    from models import create_model, save_checkpoint
    from orchestrator.worker import _pretrain_and_publish

    history = [{"epoch": 1, "images_per_s": 80.0}, {"epoch": 2, "images_per_s": 120.0, "val_top1": 0.25}]
    published = tmp_path / "pretrained" / "p1"
    published.mkdir(parents=True)
    network = create_model("alexnet", 10, {"variant": "small", "width": 0.125})
    save_checkpoint(published / "model.pt", network, {"pretrain": {}, "history": history})
    store = Store(str(tmp_path / "results"))
    stage = {"loop": {"not": "a pretraining config"}, "row": {k: v for k, v in row("p1").items() if k != "value"}}
    _pretrain_and_publish(stage, str(published), store, rank=0)
    written = store.finished_row("pretrain", "p1")
    assert written["value"] == 0.25 and written["images_per_s"] == 100.0
    assert json.loads(written["metrics"]) == {"final": history[-1], "history": history}

"""A run on object storage: a real S3 API served on loopback (moto's server), named the way users of S3-compatible
stores (MinIO, Ceph) name it, with the endpoint in the URI's query. Rows, Train checkpoints, manifests, the plan and
the report go into the bucket and are read back by boto3; a rerun skips what is there; a missing bucket, refused
credentials and a malformed URI are reported before Ray starts, naming what to fix."""

import io
import json
import subprocess
import sys
import time

import boto3
import moto.settings
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import ray
from conftest import LOCAL_RAY
from test_sweep import TINY, sweep

from orchestrator.run import main
from orchestrator.store import filesystem_of, join

pytestmark = pytest.mark.xdist_group(LOCAL_RAY)

ONE_POINT = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[sun397]", "grid.seeds=[0]"]


def storage_uri(endpoint: str, folder: str) -> str:
    return f"s3://runs/{folder}?endpoint_override={endpoint}&scheme=http"


def objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix`` in bucket ``runs``, read by boto3 (not pyarrow)."""
    client = boto3.client("s3", endpoint_url=f"http://{endpoint}")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket="runs", Prefix=prefix)
            for o in page.get("Contents", [])]  # fmt: skip
    return {key: client.get_object(Bucket="runs", Key=key)["Body"].read() for key in keys}


def result_rows(stored: dict[str, bytes]) -> list[dict]:
    files = [body for key, body in stored.items() if "/results/" in key and key.endswith(".parquet")]
    return sorted((pq.read_table(io.BytesIO(body)).to_pylist()[0] for body in files), key=lambda r: r["kind"])


def test_join_keeps_a_uris_query_at_the_end():
    uri = "s3://bucket/runs?endpoint_override=127.0.0.1:9000&scheme=http"
    assert (
        join(uri, "my-run", "results") == "s3://bucket/runs/my-run/results?endpoint_override=127.0.0.1:9000&scheme=http"
    )
    assert join("s3://bucket/runs/", "a") == "s3://bucket/runs/a"
    assert join("/data/runs", "a", "b") == "/data/runs/a/b"


@pytest.mark.slow  # a whole sweep of Ray Train worker groups: about 1.5 minutes on 2 cores
def test_a_grid_on_s3_named_with_its_endpoint_in_the_uri_stores_everything_there_and_a_rerun_skips_it(
    s3_endpoint, monkeypatch, tmp_path
):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # the endpoint comes from the URI alone
    storage = storage_uri(s3_endpoint, "lab")
    first = sweep(*ONE_POINT, f"storage={storage}", "run=on-s3", cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert first.stdout.strip().splitlines()[-1] == join(storage, "on-s3", "results")
    assert f"report: {join(storage, 'on-s3', 'report')}" in first.stdout
    stored = objects(s3_endpoint, "lab/on-s3/")
    rows = result_rows(stored)
    assert [(r["kind"], r["status"], r["task"]) for r in rows] == [
        ("finetune", "ok", "sun397"),
        ("pretrain", "ok", None),
    ]
    assert 0 <= rows[1]["value"] <= 1 and rows[0]["metric"] == "sun397_top1"
    names = set(stored)
    assert "lab/on-s3/plans/classes_vs_examples.json" in names and "lab/on-s3/config.yaml" in names
    assert f"lab/on-s3/subsets/{rows[1]['subset_hash']}.parquet" in names  # the manifest the workers read
    assert {"lab/on-s3/report/report.md", "lab/on-s3/report/index.html"} <= names
    assert not any(name.rsplit("/", 1)[1].startswith(".") for name in names if "/results/" in name)  # no leftovers
    # The row's checkpoint is a URI that reads back, endpoint included, and names the published network in the bucket.
    checkpoint = rows[1]["checkpoint"]
    assert checkpoint.startswith("s3://runs/lab/on-s3/pretrained/") and checkpoint.endswith("&scheme=http")
    filesystem, path = filesystem_of(checkpoint)
    assert any(entry.base_name.endswith(".pt") for entry in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)))
    assert not list(tmp_path.iterdir())  # nothing was written where the driver ran

    second = sweep(*ONE_POINT, f"storage={storage}", "run=on-s3", "report=false", cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "[done]  fine-tunings: 1 (0 to run)" in second.stdout
    assert result_rows(objects(s3_endpoint, "lab/on-s3/")) == rows  # the same rows, none written again


@pytest.mark.parametrize(
    "make_storage, fix",
    [
        (
            lambda endpoint: f"s3://no-such-bucket/x?endpoint_override={endpoint}&scheme=http",
            "Bucket 'no-such-bucket' not found. To create buckets, enable the allow_bucket_creation option.. To fix: "
            "create the bucket, or correct its name in storage=",
        ),
        (
            lambda endpoint: f"s3://runs/x?endpoint_overide={endpoint}&scheme=http",
            "Unexpected query parameter in S3 URI: 'endpoint_overide'. To fix: pyarrow's S3 URIs take region, scheme, "
            "endpoint_override",
        ),
        (
            lambda endpoint: f"s3://runs/x?endpoint_override={endpoint}&scheme=htp",
            "Invalid S3 connection scheme 'htp'. To fix: scheme= takes http or https",
        ),
    ],
    ids=["missing-bucket", "misspelt-parameter", "bad-scheme"],
)
def test_a_storage_that_cannot_be_written_is_reported_before_ray_starts(s3_endpoint, capsys, make_storage, fix):
    storage = make_storage(s3_endpoint)
    started = time.monotonic()
    assert main([*ONE_POINT, f"storage={storage}", "run=r"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot write to storage={join(storage, 'r')}: ") and fix in error
    assert time.monotonic() - started < 30 and not ray.is_initialized()


def test_credentials_the_store_refuses_are_reported_before_ray_starts(s3_endpoint, capsys, monkeypatch):
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks credentials from now
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-key-the-store-knows")
    assert main([*ONE_POINT, f"storage={storage_uri(s3_endpoint, 'x')}", "run=r", "dry_run=true"]) == 2
    error = capsys.readouterr().err
    assert "AWS Error ACCESS_DENIED" in error
    assert "To fix: the credentials are missing or may not write there: set AWS_ACCESS_KEY_ID" in error
    assert not ray.is_initialized()


@pytest.mark.slow
def test_a_driver_killed_mid_pretraining_resumes_from_its_checkpoint_in_the_bucket(s3_endpoint, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    storage = storage_uri(s3_endpoint, "resume")
    # Enough epochs that the kill lands mid-pretraining: a killed driver's workers go on for a few seconds
    args = [*ONE_POINT, "pretrain.epochs=15", f"storage={storage}", "run=r", "report=false"]
    first = subprocess.Popen([sys.executable, "-m", "orchestrator.run", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=tmp_path)  # fmt: skip

    def registered_checkpoint() -> bool:
        snapshots = [body for key, body in objects(s3_endpoint, "resume/r/train/").items()
                     if key.endswith("checkpoint_manager_snapshot.json")]  # fmt: skip
        return any(json.loads(body).get("checkpoint_results") for body in snapshots)

    deadline = time.monotonic() + 600
    while not registered_checkpoint():
        assert first.poll() is None and time.monotonic() < deadline, "no checkpoint was registered in the bucket"
        time.sleep(1)
    first.kill()
    first.communicate()
    second = sweep(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    rows = result_rows(objects(s3_endpoint, "resume/r/"))
    assert [(r["kind"], r["status"]) for r in rows] == [("finetune", "ok"), ("pretrain", "ok")]
    history = json.loads(rows[1]["metrics"])["history"]
    assert [h["epoch"] for h in history] == list(range(1, 16))
    assert [h.get("resumed_after_epoch") for h in history].count(None) == 14  # resumed once, not restarted

"""The result store: a Parquet dataset with one file per finished unit of work.

    <storage>/<run>/results/<kind>-<unit_id>.parquet

A row holds every input that determined the unit and every number it produced (see SCHEMA). Files
written before a column existed read with nulls in it (the ``model`` and ``protocol`` columns came
with the model and protocol registries; earlier rows are AlexNet pretrainings and their transfers).
Files are written whole (``write_whole``): to a hidden temporary name, then renamed (on object stores
(s3://, gs://) copied, which is atomic), so that a reader or a rerun sees a whole file or none, whatever
fails midway: a full disk, a lost permission, a dropped connection. A write that fails for a while (an
object store that refuses requests, a network hiccup) is tried again for up to ``WRITE_RETRY_S``; one that
cannot succeed (no space left, no permission) fails at once with the cause. A unit's file is named by its
content hash, so a rerun that finishes a failed unit replaces its row and nothing is ever duplicated. Any
Parquet reader reads the folder:

    pandas.read_parquet("runs/classes_vs_examples/results")
    duckdb -c "select * from 'runs/classes_vs_examples/results/*.parquet'"
"""

import errno
import io
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

SCHEMA = pa.schema([
    ("run", pa.string()), ("grid", pa.string()), ("kind", pa.string()),  # pretrain | finetune | search (a setting)
    ("unit_id", pa.string()), ("pretrain_id", pa.string()), ("trial_id", pa.string()),
    ("status", pa.string()), ("error", pa.string()),  # ok | failed
    ("model", pa.string()), ("protocol", pa.string()),  # pretrain | the transfer's protocol (finetune, detect, probe)
    ("task", pa.string()), ("seed", pa.int64()),
    ("metric", pa.string()), ("value", pa.float64()), ("metrics", pa.string()),  # JSON: every number
    ("label_set", pa.string()), ("classes", pa.int64()), ("labels", pa.int64()),
    ("train_images", pa.int64()), ("images_per_class", pa.int64()), ("budget", pa.int64()),
    ("budget_shortfall", pa.int64()), ("subset_hash", pa.string()), ("subset_seed", pa.int64()),
    ("data_fingerprint", pa.string()),  # what the data read held: synthetic.fingerprint
    ("epochs", pa.int64()), ("wall_time_s", pa.float64()), ("images_per_s", pa.float64()),
    ("checkpoint", pa.string()), ("config", pa.string()),  # JSON: the run's whole configuration
    ("hardware", pa.string()), ("versions", pa.string()), ("git_revision", pa.string()),
    ("finished_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


WRITE_RETRY_S = 300.0  # how long a write that fails for a while is tried again
# Errors that waiting does not mend: a write that meets them fails at once.
LASTING_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.EFBIG}


def _split_query(uri: str) -> tuple[str, str]:
    """(``uri`` without its query, the query with its ``?``, or ""): a local path has none."""
    if "://" in uri and "?" in uri:
        head, query = uri.split("?", 1)
        return head, f"?{query}"
    return uri, ""


def join(base: str, *parts: str) -> str:
    """``base`` with ``parts`` appended to its path. A URI's query (``s3://bucket/runs?endpoint_override=HOST:PORT
    &scheme=http``, how S3-compatible stores are named) stays at the end, where pyarrow reads it."""
    head, query = _split_query(base)
    return "/".join(p.rstrip("/") for p in (head, *parts)) + query


def filesystem_of(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a pyarrow filesystem URI (s3://, gs://, ...)."""
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)


class StorageError(OSError):
    pass


# What pyarrow's S3 errors name, and what to fix: the first cause found in an error's text is reported.
STORAGE_FIXES = {
    "not found": "create the bucket, or correct its name in storage=",
    "ACCESS_DENIED": "the credentials are missing or may not write there: set AWS_ACCESS_KEY_ID and "
    "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or give the nodes an instance profile (IAM role) that may write the bucket",
    "INVALID_ACCESS_KEY_ID": "the access key is unknown to the store: check AWS_ACCESS_KEY_ID or AWS_PROFILE",
    "SIGNATURE_DOES_NOT_MATCH": "the secret key does not match the access key: check AWS_SECRET_ACCESS_KEY",
    "query parameter": "pyarrow's S3 URIs take region, scheme, endpoint_override, allow_bucket_creation, "
    "allow_bucket_deletion (s3://bucket/path?endpoint_override=HOST:PORT&scheme=http)",
    "connection scheme": "scheme= takes http or https",
}


def check_storage(uri: str) -> None:
    """Creates ``uri`` and writes and deletes a small file there, once, with no retry: a missing bucket, missing
    or wrong credentials or a malformed URI is reported now, naming what to fix, not after Ray has started."""
    try:
        filesystem, path = filesystem_of(uri)
        filesystem.create_dir(path, recursive=True)
        probe = join(path, f".probe-{uuid.uuid4().hex}")
        _write_whole_once(filesystem, probe, b"can write")  # as every write of the run's: a temporary file, renamed
        filesystem.delete_file(probe)
    except (OSError, pa.ArrowInvalid) as error:
        fix = next((fix for cause, fix in STORAGE_FIXES.items() if cause in str(error)), None)
        raise StorageError(f"cannot write to storage={uri}: {error}" + (f". To fix: {fix}" if fix else "")) from None


def write_whole(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see all of it or nothing, and a failed write leaves nothing
    behind but, at worst, a hidden temporary file that readers ignore. Tried again while it fails for a while."""
    waited, pause = 0.0, 1.0
    while True:
        try:
            return _write_whole_once(filesystem, path, data)
        except OSError as error:
            if _lasting(error) or waited >= WRITE_RETRY_S:
                raise
            print(f"writing {path} failed ({error}); trying again in {pause:.0f} s", file=sys.stderr)
            time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 30.0)


def _lasting(error: OSError) -> bool:
    return error.errno in LASTING_ERRORS or any(cause in str(error) for cause in STORAGE_FIXES)


def _write_whole_once(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    folder, name = path.rsplit("/", 1)
    temporary = join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        if isinstance(filesystem, pafs.LocalFileSystem):
            with open(temporary, "wb") as out:  # not through pyarrow: fsync makes the rename durable
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
        else:
            with filesystem.open_output_stream(temporary) as out:
                out.write(data)
        filesystem.move(temporary, path)
    except BaseException:
        try:
            filesystem.delete_file(temporary)
        except OSError:  # never written, or the storage is gone: a hidden leftover that readers ignore
            pass
        raise


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


class Store:
    def __init__(self, uri: str):
        """``uri``: the results folder, a local path or a pyarrow filesystem URI."""
        self.uri = uri
        self.filesystem, self.path = filesystem_of(uri)
        self.filesystem.create_dir(self.path, recursive=True)

    def write(self, row: dict) -> None:
        row = {**row, "finished_at": datetime.now(UTC)}
        for key in ("metrics", "config", "hardware", "versions"):
            if row.get(key) is not None and not isinstance(row[key], str):
                row[key] = json.dumps(row[key], sort_keys=True, default=str)
        unknown = set(row) - set(SCHEMA.names)
        if unknown:
            raise ValueError(f"not in the result schema: {sorted(unknown)}")
        table = pa.Table.from_pylist([row], schema=SCHEMA)
        write_whole(self.filesystem, self._file(row["kind"], row["unit_id"]), parquet_bytes(table))

    def finished_row(self, kind: str, unit_id: str) -> dict | None:
        """The unit's row, read from its own file, if the unit finished successfully; else None."""
        path = self._file(kind, unit_id)
        if self.filesystem.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with self.filesystem.open_input_file(path) as file:
            row = pq.read_table(file, schema=SCHEMA).to_pylist()[0]
        return row if row["status"] == "ok" else None

    def _file(self, kind: str, unit_id: str) -> str:
        return join(self.path, f"{kind}-{unit_id}.parquet")

    def read(self) -> pa.Table:
        """Every row; hidden (temporary) files are ignored."""
        dataset = ds.dataset(self.path, schema=SCHEMA, format="parquet", filesystem=self.filesystem,
                             exclude_invalid_files=False, ignore_prefixes=[".", "_"])  # fmt: skip
        return dataset.to_table()

    def finished(self) -> dict[str, dict]:
        """unit_id -> its row, for the units that finished successfully."""
        return {row["unit_id"]: row for row in self.read().to_pylist() if row["status"] == "ok"}

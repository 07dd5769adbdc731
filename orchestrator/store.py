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
    ("run", pa.string()), ("grid", pa.string()), ("kind", pa.string()),  # pretrain | finetune
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


def join(*parts: str) -> str:
    return "/".join(p.rstrip("/") for p in parts)


def filesystem_of(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) for a local path or a pyarrow filesystem URI (s3://, gs://, ...)."""
    return pafs.FileSystem.from_uri(uri) if "://" in uri else (pafs.LocalFileSystem(), uri)


def write_whole(filesystem: pafs.FileSystem, path: str, data: bytes) -> None:
    """Writes ``data`` to ``path`` so that readers see all of it or nothing, and a failed write leaves nothing
    behind but, at worst, a hidden temporary file that readers ignore. Tried again while it fails for a while."""
    waited, pause = 0.0, 1.0
    while True:
        try:
            return _write_whole_once(filesystem, path, data)
        except OSError as error:
            if error.errno in LASTING_ERRORS or waited >= WRITE_RETRY_S:
                raise
            print(f"writing {path} failed ({error}); trying again in {pause:.0f} s", file=sys.stderr)
            time.sleep(pause)
            waited, pause = waited + pause, min(pause * 2, 30.0)


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


def uri_of(filesystem: pafs.FileSystem, path: str) -> str:
    """The URI of ``path`` on ``filesystem`` that ``filesystem_of`` reads back: the path itself on a local disk."""
    return path if isinstance(filesystem, pafs.LocalFileSystem) else f"{filesystem.type_name}://{path}"


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
        write_whole(self.filesystem, join(self.path, f"{row['kind']}-{row['unit_id']}.parquet"), parquet_bytes(table))

    def read(self) -> pa.Table:
        """Every row; hidden (temporary) files are ignored."""
        dataset = ds.dataset(self.path, schema=SCHEMA, format="parquet", filesystem=self.filesystem,
                             exclude_invalid_files=False, ignore_prefixes=[".", "_"])  # fmt: skip
        return dataset.to_table()

    def finished(self) -> dict[str, dict]:
        """unit_id -> its row, for the units that finished successfully."""
        return {row["unit_id"]: row for row in self.read().to_pylist() if row["status"] == "ok"}

"""The result store: rows written whole, read back by an independent reader, and files written before a column
existed still read."""

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.store import SCHEMA, Store


def test_rows_round_trip_and_stores_from_before_the_model_and_protocol_columns_still_read(tmp_path):
    store = Store(str(tmp_path))
    store.write({"run": "r", "kind": "pretrain", "unit_id": "new", "status": "ok", "model": "resnet18",
                 "protocol": "pretrain", "metrics": {"val_top1": 0.5}, "value": 0.5})  # fmt: skip
    before = pa.schema([field for field in SCHEMA if field.name not in ("model", "protocol")])
    old_row = {"run": "r", "kind": "finetune", "unit_id": "old", "status": "ok", "task": "sun397", "value": 0.25}
    pq.write_table(pa.Table.from_pylist([old_row], schema=before), tmp_path / "finetune-old.parquet")
    rows = {row["unit_id"]: row for row in store.read().to_pylist()}
    assert rows["new"]["model"] == "resnet18" and rows["new"]["protocol"] == "pretrain"
    assert rows["old"]["model"] is None and rows["old"]["protocol"] is None and rows["old"]["value"] == 0.25
    assert set(store.finished()) == {"new", "old"}
    assert duckdb.sql(f"select metrics from '{tmp_path}/pretrain-new.parquet'").fetchall() == [('{"val_top1": 0.5}',)]

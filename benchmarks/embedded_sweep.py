"""Minutes for `python -m orchestrator.run grid=classes_vs_examples` on the embedded data, from a
cold start: a fresh data directory (WordNet laid out, synthetic data generated) and a fresh
local Ray. Target (issue #4): under 10 minutes on 2 cores.

    .venv/bin/python benchmarks/embedded_sweep.py [--warm] [extra key=value overrides]

--warm reuses the project's data directory (no generation). It also prints whether the results
show signal: among fine-class points, pretraining accuracy should rise with the images per class.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def main() -> None:
    warm = "--warm" in sys.argv
    overrides = [a for a in sys.argv[1:] if a != "--warm"]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not warm:
            env["TRANSFER_DATA_DIR"] = str(Path(tmp) / "data")
        command = [sys.executable, "-m", "orchestrator.run", "grid=classes_vs_examples", f"storage={tmp}/runs", *overrides]
        started = time.perf_counter()
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        minutes = (time.perf_counter() - started) / 60
        if run.returncode != 0:
            sys.exit(f"the run failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        results = run.stdout.strip().splitlines()[-1]
        print(f"{'warm' if warm else 'cold'} start: {minutes:.1f} minutes (target: under 10)")
        pretrainings = duckdb.sql(
            f"select label_set, labels, train_images, train_images / labels as per_label, value "
            f"from '{results}/*.parquet' where kind = 'pretrain' order by per_label"
        ).fetchall()
        for label_set, labels, images, per_label, top1 in pretrainings:
            print(f"  {label_set:14s} {labels:5d} labels {images:6d} images {per_label:6.1f} per label  val top-1 {top1:.3f}")
        # Among fine-class points (all, or random class subsets) fewer classes means more images each.
        accuracies = [row[-1] for row in pretrainings if row[0] == "fine" or row[0].startswith("random_")]
        print("signal: pretraining accuracy rises with images per class" if accuracies == sorted(accuracies) else
              "no clear signal: pretraining accuracy does not rise with images per class")
        finetunes = duckdb.sql(
            f"select p.label_set, f.metric, avg(f.value), count(*) from '{results}/*.parquet' f join "
            f"'{results}/*.parquet' p on f.pretrain_id = p.unit_id and p.kind = 'pretrain' "
            f"where f.kind = 'finetune' group by all order by all"
        ).fetchall()
        for label_set, metric, mean, seeds in finetunes:
            print(f"  {label_set:14s} {metric:18s} {mean:.3f} (mean of {seeds} seeds)")


if __name__ == "__main__":
    main()

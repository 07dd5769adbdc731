"""Minutes for `python -m orchestrator.run grid=NAME` on the embedded data (default grid=classes_vs_examples;
grid=huh2016 runs every experiment of the first paper), from a cold start: a fresh data directory (WordNet laid
out, synthetic data generated) and a fresh local Ray. Target (issue #4): classes_vs_examples under 10 minutes on
2 cores.

    .venv/bin/python benchmarks/embedded_sweep.py [--warm] [--keep DIR] [grid=NAME] [key=value ...]

--warm reuses the project's data directory (no generation); --keep DIR keeps the run (results, report) in DIR.
It prints the plan's size, the minutes, the pretrainings' accuracies and the report's findings with their
verdicts.
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
    arguments = [a for a in sys.argv[1:] if a != "--warm"]
    keep = None
    if "--keep" in arguments:
        at = arguments.index("--keep")
        keep = Path(arguments[at + 1]).resolve()
        del arguments[at : at + 2]
    grid = next((a.split("=", 1)[1] for a in arguments if a.startswith("grid=")), "classes_vs_examples")
    overrides = [a for a in arguments if not a.startswith("grid=")]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not warm:
            env["TRANSFER_DATA_DIR"] = str(Path(tmp) / "data")
        storage = Path(keep or tmp) / "runs"
        command = [sys.executable, "-m", "orchestrator.run", f"grid={grid}", f"storage={storage}", *overrides]
        plan = subprocess.run([*command, "dry_run=true"], env=env, capture_output=True, text=True)
        started = time.perf_counter()
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        minutes = (time.perf_counter() - started) / 60
        if run.returncode != 0:
            sys.exit(f"the run failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        results = run.stdout.strip().splitlines()[-1]
        print(plan.stdout.splitlines()[0])
        print(f"{'warm' if warm else 'cold'} start: {minutes:.1f} minutes")
        pretrainings = duckdb.sql(
            f"select label_set, labels, train_images, subset_seed, value from '{results}/*.parquet' "
            f"where kind = 'pretrain' order by label_set, train_images, subset_seed"
        ).fetchall()
        for label_set, labels, images, seed, top1 in pretrainings:
            print(f"  {label_set:14s} {labels:5d} labels {images:6d} images  seed {seed}  val top-1 {top1:.3f}")
        report = Path(results).parent / "report" / "report.md"
        findings = [line for line in report.read_text().splitlines() if line.startswith("| ") and "verdict" not in line
                    and line.split(" | ")[-1].rstrip(" |").split(" (")[0] in ("holds", "does not hold", "inconclusive")]  # fmt: skip
        print(f"findings judged ({report}):")
        for line in findings:
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            print(f"  {cells[-1]}: {cells[0]}; difference {cells[2]}, 95% interval {cells[3]}")
        if keep:
            print(f"kept in {storage}")


if __name__ == "__main__":
    main()

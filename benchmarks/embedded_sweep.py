"""Minutes for `python -m orchestrator.run grid=NAME` on the embedded data (default grid=classes_vs_examples;
grid=huh2016 runs every experiment of the first paper), from a cold start: a fresh data directory (WordNet laid
out, synthetic data generated) and a fresh local Ray. Target (issue #15): classes_vs_examples under 3 minutes on
2 cores without detection.

    .venv/bin/python benchmarks/embedded_sweep.py [--warm] [--keep DIR] [grid=NAME] [key=value ...]

--warm reuses the project's data directory (no generation); --keep DIR keeps the run (results, report) in DIR.
It prints the plan's size, the minutes, the orchestration overhead (the wall time during which no trainer's worker
loop ran: Ray's start, worker-group start-ups that no training overlaps, the report; as a share of the wall time),
the pretrainings' accuracies against chance, each task's fine-tuned score against that of a randomly initialised
network (a second run, of one pretraining at a learning rate of 1e-8 for one epoch), and the report's findings.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

RANDOM_INIT_POINT = "grid.points=[{label_set: fine, pretrain: {epochs: 1, lr: 1.0e-8, lr_step_epochs: 1}}]"


def trainer_spans(results: str) -> list[tuple[float, float]]:
    """(start, end) in seconds since the epoch of every worker loop that ran a unit of the run."""
    spans = []
    for kind, metrics in duckdb.sql(f"select kind, metrics from '{results}/*.parquet'").fetchall():
        metrics = json.loads(metrics)
        if kind == "pretrain":
            spans.append((metrics["final"]["trainer_started_at"], metrics["final"]["trainer_finished_at"]))
        else:
            spans.append((metrics["started_at"], metrics["started_at"] + metrics["wall_time_s"]))
    return spans


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """The time during which at least one span was running."""
    busy, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        busy += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    return busy


def main() -> None:
    warm = "--warm" in sys.argv
    arguments = [a for a in sys.argv[1:] if a != "--warm"]
    keep = None
    if "--keep" in arguments:
        at = arguments.index("--keep")
        keep = Path(arguments[at + 1]).resolve()
        del arguments[at : at + 2]
        if (keep / "runs").exists():  # the run would resume there, and the figures time a resume
            sys.exit(f"--keep {keep}: it holds a run already (runs/); name an empty folder")
    grid = next((a.split("=", 1)[1] for a in arguments if a.startswith("grid=")), "classes_vs_examples")
    overrides = [a for a in arguments if not a.startswith("grid=")]
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not warm:
            env["TRANSFER_DATA_DIR"] = str(Path(tmp) / "data")
        storage = Path(keep or tmp) / "runs"
        command = [sys.executable, "-m", "orchestrator.run", f"grid={grid}", f"storage={storage}", *overrides]
        started, started_at = time.perf_counter(), time.time()
        run = subprocess.run(command, env=env, capture_output=True, text=True)
        minutes, ended_at = (time.perf_counter() - started) / 60, time.time()
        if run.returncode != 0:
            sys.exit(f"the run failed:\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}")
        # After the run, which it would have spared some generation (it counts the tasks' images)
        plan = subprocess.run([*command, "dry_run=true"], env=env, capture_output=True, text=True)
        results = run.stdout.strip().splitlines()[-1]
        print(plan.stdout.splitlines()[0])
        print(f"{'warm' if warm else 'cold'} start: {minutes:.1f} minutes")
        spans = trainer_spans(results)
        busy = busy_seconds(spans)
        idle = minutes * 60 - busy
        print(f"inside trainers {busy:.0f} s, orchestration overhead {idle:.0f} s ({idle / (minutes * 60):.0%} of the wall time)")
        first, last = min(start for start, _ in spans), max(end for _, end in spans)
        print(f"  before the first trainer {first - started_at:.0f} s (imports, data generation, Ray, the trials' and worker "
              f"groups' start-up), between trainers {max(0.0, idle - (first - started_at) - (ended_at - last)):.0f} s, after the "
              f"last {ended_at - last:.0f} s (the report)")  # fmt: skip
        pretrainings = duckdb.sql(
            f"select label_set, labels, train_images, subset_seed, value from '{results}/*.parquet' "
            f"where kind = 'pretrain' order by label_set, train_images, subset_seed"
        ).fetchall()
        for label_set, labels, images, seed, top1 in pretrainings:
            print(f"  {label_set:14s} {labels:5d} labels {images:6d} images  seed {seed}  val top-1 {top1:.3f}"
                  f"  ({top1 * labels:.0f}x chance)")  # fmt: skip
        random_init = subprocess.run([*command, "run=random_init", "report=false", RANDOM_INIT_POINT], env=env,
                                     capture_output=True, text=True)  # fmt: skip
        if random_init.returncode != 0:
            sys.exit(f"the random-initialisation run failed:\n{random_init.stdout[-4000:]}\n{random_init.stderr[-4000:]}")
        baseline = dict(duckdb.sql(f"select task, avg(value) from '{random_init.stdout.strip().splitlines()[-1]}/*.parquet' "
                                   "where kind = 'finetune' group by task").fetchall())  # fmt: skip
        for task, worst, best in duckdb.sql(f"select task, min(value), max(value) from '{results}/*.parquet' "
                                            "where kind = 'finetune' group by task order by task").fetchall():  # fmt: skip
            print(f"  {task:12s} fine-tuned {worst:.3f}-{best:.3f} over the pretrainings; randomly initialised "
                  f"{baseline[task]:.3f}")  # fmt: skip
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

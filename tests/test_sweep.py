"""The sweep end to end through a real local Ray: planning, bad input, the Parquet store read
back by duckdb, resumption; the slow tests kill a worker, interrupt the driver and use a
two-node cluster."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import LOCAL_RAY

from formats.voc import VOC_CLASSES
from orchestrator.config import available, load
from orchestrator.plan import make_plan
from orchestrator.run import main
from orchestrator.store import SCHEMA
from tasks import datasets

pytestmark = pytest.mark.xdist_group(LOCAL_RAY)

TINY = [*(f"data.{name}=embedded:tiny" for name in datasets()), "pretrain.epochs=1", "finetune.epochs=1",
        "grid.budget=300", "detect.iterations=4", "detect.checkpoint_interval=2", "detect.image_scale=96",
        "detect.batch_size=2", "fixed_features.l2_count=5", "finetune_search.steps=4", "scratch_search.steps=4",
        "finetune_search.checkpoint_steps=2", "scratch_search.checkpoint_steps=2"]  # fmt: skip


def sweep(*overrides: str, timeout=900, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.run", *overrides], capture_output=True, text=True,
                          timeout=timeout, **popen)  # fmt: skip


def rows(results: Path) -> list[dict]:
    relation = duckdb.sql(f"select * replace (finished_at::varchar as finished_at) from read_parquet('{results}/*.parquet') order by kind, label_set, task")
    return [dict(zip(relation.columns, row)) for row in relation.fetchall()]


def test_dry_run_prints_the_plan_and_runs_nothing(tmp_path, capsys):
    assert main(["dry_run=true", f"storage={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "grid classes_vs_examples: 4 pretrainings, 16 fine-tunings" in out
    for label_set in ("fine", "random_500", "random_250", "up_down_127"):
        assert label_set in out
    assert "estimate: 96,000 pretraining image passes; 16 classifier fine-tunings of 4 epochs;" in out
    assert main(["dry_run=true", f"storage={tmp_path}", "grid.tasks=[sun397,pascal_det]", "grid.seeds=[0]"]) == 0
    assert "4 classifier fine-tunings of 4 epochs, 4 detector fine-tunings of 300 iterations" in capsys.readouterr().out
    assert not list((tmp_path / "classes_vs_examples" / "results").iterdir())


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["grid.points=[{label_set:fine,images_per_clas:500}]"], "unknown key 'images_per_clas'; did you mean images_per_class"),
        (["grid.points=[{label_set:down_up_900}]"], "down_up has no step named 'down_up_900'; its steps have 1000, 999"),
        (["grid.points=[{label_set:random_2000}]"], "random_2000: choose between 1 and 1000 classes"),
        (["grid.points=[{label_set:fine,budget:{embedded:10}}]", "scale=paper"], "has no value for scale 'paper'"),
        (["grid.points=[{label_set:fine,pretrain:{epoch:2}}]"], "pretrain: unknown key 'epoch'; did you mean epochs"),
        (["grid.points=[{label_set:fine,finetune:{epochs:0}}]"], "finetune.epochs must be a whole number >= 1"),
        (["model=resnet5O"], "unknown model 'resnet5O'; did you mean resnet50"),
        (["model_args.alexnet=small"], "(model_args.alexnet) are a mapping such as {width: 0.5}, not 'small'"),
        (["model=resnet18", "grid.tasks=[pascal_det]"], "pascal_det transfers alexnet pretrainings only"),
        (["model_args.alexnet.variant=tiny"], "AlexNet variant must be one of ('imagenet', 'small'), not 'tiny'"),
    ],
)
def test_a_dry_run_catches_every_name_and_key_of_the_grid(tmp_path, capsys, overrides, message):
    assert main([*overrides, "dry_run=true", f"storage={tmp_path}"]) == 2
    assert message in capsys.readouterr().err


def test_a_point_sets_its_model_and_recipe():
    config = load(["grid.points=[{label_set:fine},{label_set:fine,model:resnet18,pretrain:{epochs:2},"
                   "finetune:{lr:0.1}}]", "grid.seeds=[0]"])  # fmt: skip
    plan = make_plan(config)
    alexnet, resnet = plan.pretrainings
    assert alexnet.model == {"name": "alexnet", "args": {"variant": "small", "width": 0.25, "dropout": 0.0, "batch_norm": True}}
    assert resnet.model == {"name": "resnet18", "args": {}} and resnet.recipe["epochs"] == 2
    assert alexnet.recipe["epochs"] == 8 and alexnet.subset == resnet.subset
    lrs = {(f.pretrain_id, f.task): f.recipe["lr"] for f in plan.finetunings}
    assert lrs[alexnet.unit_id, "sun397"] == 0.005 and lrs[resnet.unit_id, "sun397"] == 0.1


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["grid=nope"], f"unknown grid 'nope'; available: {', '.join(available('grid'))}"),
        (["pretrain.epoch=3"], "unknown key 'pretrain.epoch'; did you mean pretrain.epochs"),
        (["data.imagenet=/no/such/imagenet"], "data.imagenet=/no/such/imagenet is not a folder"),
        (["grid.tasks=[sun397,pascal]"], "unknown task(s) ['pascal']"),
        (["grid.points=[{label_set:fien}]"], "unknown label set 'fien'"),
        (["pretrain.epochs=0"], "pretrain.epochs must be a whole number >= 1"),
        (["detect.iterations=0"], "detect.iterations must be a whole number >= 1"),
    ],
)
def test_bad_input_is_named(tmp_path, capsys, overrides, message):
    assert main([*overrides, f"storage={tmp_path}"]) == 2
    assert message in capsys.readouterr().err


def test_missing_data_root_says_how_to_get_data(tmp_path, capsys):
    assert main([*TINY, "data.sun397=/no/sun", f"storage={tmp_path}"]) == 2
    error = capsys.readouterr().err
    assert "data.sun397=embedded:default" in error and "python -m synthetic generate" in error


def test_data_without_a_tasks_layout_is_named(tmp_path, tiny_voc, capsys):
    action_only = tmp_path / "VOCdevkit"
    shutil.copytree(tiny_voc / "VOC2012", action_only / "VOC2012")  # VOC 2012 action, no VOC 2007 detection
    assert main([*TINY, f"data.voc={action_only}", "grid.tasks=[voc_action,pascal_det]", f"storage={tmp_path}"]) == 2
    error = capsys.readouterr().err
    assert f"data.voc={action_only} cannot serve task pascal_det" in error and "VOC2007 folder" in error


def test_tiny_grid_end_to_end_then_resume(tmp_path):
    storage = tmp_path / "elsewhere"
    # The data decides whether a point can be built: 5 images per class is more than the tiny ImageNet holds.
    args = [*TINY, "grid.points=[{label_set:random_250},{label_set:random_100,images_per_class:5}]",
            "grid.tasks=[sun397,pascal_det]",
            "grid.seeds=[0]", f"storage={storage}", "run=tiny"]  # fmt: skip
    first = sweep(*args)
    results = storage / "tiny" / "results"
    assert first.stdout.strip().splitlines()[-1] == str(results), first.stdout[-3000:] + first.stderr[-3000:]
    assert first.returncode == 1  # one point cannot be built: its failure is reported, the rest runs
    found = rows(results)
    assert [(r["kind"], r["label_set"], r["task"], r["status"]) for r in found] == [
        ("finetune", None, "pascal_det", "ok"),
        ("finetune", None, "sun397", "ok"),
        ("pretrain", "random_100", None, "failed"),
        ("pretrain", "random_250", None, "ok"),
    ]
    detection, finetune, failed, pretrain = found
    assert "images_per_class=5 asks more than some classes hold" in failed["error"]
    assert pretrain["labels"] == 250 and pretrain["train_images"] == 300 and pretrain["budget"] == 300
    assert 0 <= pretrain["value"] <= 1 and pretrain["metric"] == "val_top1" and pretrain["images_per_s"] > 0
    assert Path(pretrain["checkpoint"], "model.pt").is_file()
    assert finetune["pretrain_id"] == pretrain["unit_id"] and finetune["metric"] == "sun397_top1"
    assert 0 <= finetune["value"] <= 1 and json.loads(finetune["metrics"])["test_images"] > 0
    assert detection["pretrain_id"] == pretrain["unit_id"] and detection["metric"] == "pascal_det_map"
    metrics = json.loads(detection["metrics"])
    assert 0 <= detection["value"] == metrics["map"] <= 1 and metrics["iterations"] == 4
    assert {f"ap_{name}" for name in VOC_CLASSES} <= metrics.keys() and metrics["test_images"] == 40
    assert detection["train_images"] == 40 and detection["images_per_s"] > 0
    for row in (detection, finetune, pretrain):
        assert row["run"] == "tiny" and row["grid"] == "classes_vs_examples" and row["trial_id"]
        assert json.loads(row["config"])["pretrain"]["epochs"] == 1
        assert json.loads(row["versions"])["ray"] == "2.60.0" and row["git_revision"]
        assert json.loads(row["hardware"])["num_workers"] == 1 and row["wall_time_s"] > 0
    assert set(duckdb.sql(f"select * from '{results}/*.parquet'").columns) == set(SCHEMA.names)
    assert (storage / "tiny" / "config.yaml").is_file()
    # The run ends with its report: the pretraining that failed and the one that ran, in the grid's table.
    report = storage / "tiny" / "report"
    assert f"report: {report}" in first.stdout and {p.name for p in report.iterdir()} == {
        "classes_vs_examples.png", "index.html", "report.md"}
    markdown = (report / "report.md").read_text()
    assert "6 units planned: 3 finished, 1 failed, 2 not run" in markdown
    assert f"| random_250 (250 labels, budget 300) | {100 * pretrain['value']:.1f} (n=1) |" in markdown

    ok_files = {f"{r['kind']}-{r['unit_id']}.parquet" for r in found if r["status"] == "ok"}
    stamps = {name: (results / name).stat().st_mtime_ns for name in ok_files}
    again = sweep(*args)
    assert again.returncode == 1 and again.stdout.strip().splitlines()[-1] == str(results)
    assert "[done]" in again.stdout and "(0 to run)" in again.stdout
    assert {name: (results / name).stat().st_mtime_ns for name in ok_files} == stamps  # not run again
    assert len(rows(results)) == 4  # the failed unit was retried and its row replaced, not duplicated


@pytest.mark.slow  # two Ray Train worker groups, one after the other: about 1.5 minutes on 2 cores
def test_further_fine_tuning_groups_start_once_the_first_group_has_pretrained(tmp_path):
    args = [*TINY, "grid.points=[{label_set:random_250}]", "grid.tasks=[sun397,voc_action]", "grid.seeds=[0]",
            "resources.finetune_groups=2", "resources.points_per_trial=1", f"storage={tmp_path}", "run=groups"]  # fmt: skip
    result = sweep(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    finetunings, (pretrain,) = (
        [r for r in rows(tmp_path / "groups" / "results") if r["kind"] == kind] for kind in ("finetune", "pretrain")
    )
    assert len(finetunings) == 2 and all(r["status"] == "ok" for r in [*finetunings, pretrain])
    # The first group pretrained and published the network; the second started after that, from the same network.
    trained = json.loads(pretrain["metrics"])["final"]["trainer_finished_at"]
    assert all(json.loads(r["metrics"])["started_at"] > trained for r in finetunings)
    assert {r["checkpoint"] for r in finetunings} == {pretrain["checkpoint"]}
    assert Path(pretrain["checkpoint"], "model.pt").is_file()
    runs = sorted(p.name for p in (tmp_path / "groups" / "train").iterdir())
    assert runs == [f"point-{pretrain['unit_id']}-group0", f"point-{pretrain['unit_id']}-group1"]


@pytest.mark.slow  # four Ray Train worker groups start one after another: about 3 minutes on 2 cores
def test_each_search_setting_is_a_tune_trial_and_the_refit_chooses_from_their_rows(tmp_path):
    """Kornblith et al.'s hyper-parameter grid as Ray Tune trials: with settings_per_trial=1 every setting trains in a
    trial of its own, two at once on the two CPUs, and the refit trial reads their rows."""
    args = [*TINY, "grid=kornblith_finetune", "grid.points=[{model:alexnet}]", "grid.tasks=[pets]",
            "finetune_search.weight_decay_zero=false", "resources.settings_per_trial=1", "report=false",
            f"storage={tmp_path}", "run=search"]  # fmt: skip
    result = sweep(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    found = rows(tmp_path / "search" / "results")
    settings = [r for r in found if r["kind"] == "search"]
    (refit,) = [r for r in found if r["kind"] == "finetune"]
    assert len(settings) == 2 and all(r["status"] == "ok" for r in found)
    assert len({r["trial_id"] for r in [*settings, refit]}) == 3  # a Tune trial each
    spans = sorted((m["started_at"], m["started_at"] + m["wall_time_s"]) for m in (json.loads(r["metrics"]) for r in settings))
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:]))  # trials that ran at once
    chosen = json.loads(refit["metrics"])
    by_setting = {(m["lr"], m["weight_decay"]): m for m in (json.loads(r["metrics"]) for r in settings)}
    assert all(m["search_of"] == refit["unit_id"] for m in by_setting.values())
    assert [by_setting[s["lr"], s["weight_decay"]]["val_mean_per_class"] for s in chosen["search"]["settings"]] == \
        chosen["search"]["val_mean_per_class"]  # fmt: skip
    assert chosen["val_mean_per_class"] == max(chosen["search"]["val_mean_per_class"])
    assert {r["metric"] for r in settings} == {"pets_val_mean_per_class"} and refit["metric"] == "pets_mean_per_class"
    assert chosen["train_images"] == max(m["train_images"] for m in by_setting.values()) + chosen["val_images"]
    assert (tmp_path / "search" / "tune-search").is_dir() and (tmp_path / "search" / "tune-refit").is_dir()

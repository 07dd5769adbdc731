"""The report's Kornblith et al. (2019) analysis (experiments whose figure's x axis is imagenet_top1), built from a
stored run: a plan written as the orchestrator writes it (one experiment per protocol, each point a network) and a
row per unit written by the store, with values chosen so that every number can be checked against a hand
computation or scipy (pearsonr, spearmanr, Student's t)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from orchestrator.report import PANEL_PX, correlations, main
from orchestrator.store import Store, join

NETWORKS = ["alexnet", "resnet10t", "mobilenetv3_small_050", "mobilenetv2_050", "resnet50"]
TOP1 = dict(zip(NETWORKS, [0.55, 0.62, 0.70, 0.76, 0.80]))
SOURCE = {"resnet50": "published card"}  # the others: "measured"
TASKS = ["food101", "sun397", "voc_action"]
# Each network's transfer value per task (seed 0; seed s adds 0.01 s). None: the unit has not run.
FIXED = {"food101": [0.60, 0.66, 0.71, 0.79, 0.83], "sun397": [0.40, 0.38, 0.47, 0.52, 0.50],
         "voc_action": [0.70, 0.74, 0.72, 0.81, 0.86]}  # fmt: skip
FINETUNED = {"food101": [0.70, 0.75, 0.78, 0.84], "sun397": [0.50, 0.49, 0.55, 0.60],
             "voc_action": [0.80, 0.82, 0.83, None]}  # fmt: skip
SCRATCH = {"food101": [0.60, 0.61, 0.58, 0.63], "sun397": [0.35, 0.37, 0.36, 0.40],
           "voc_action": [0.50, 0.52, 0.51, 0.55]}  # fmt: skip


def chosen_of(protocol: str, seed: int) -> dict:
    """The hyper-parameters a transfer records: the l2 penalty of a fixed-feature probe, else lr and weight decay."""
    if protocol == "fixed_features":
        return {"l2": 10.0 ** -(3 + seed)}
    return {"lr": 0.01 * (seed + 1), "weight_decay": 1e-5}


def experiment_of(name: str, protocol: str, values: dict, seeds: list[int]) -> dict:
    """An experiment of the plan record (orchestrator.plan.record): a point per network, every one at the same
    label set and budget, as kornblith_fixed.yaml's."""
    networks = NETWORKS[: len(next(iter(values.values())))]
    points = [{"point": number, "label_set": "fine", "images_per_class": None, "budget": 4000, "classes": 1000,
               "labels": 1000, "model": network, "pretrainings": [f"pre-{network}"],
               "finetunings": {t: [f"{name}-{network}-{t}-{s}" for s in seeds] for t in values}}
              for number, network in enumerate(networks, start=1)]  # fmt: skip
    figure = {"title": f"ImageNet top-1 against transfer accuracy ({protocol})", "x": "imagenet_top1"}
    return {"name": name, "figure": figure,
            "findings": [], "tasks": list(values), "seeds": seeds, "points": points,
            "protocols": {t: protocol for t in values}}  # fmt: skip


def store_run(storage: str, run: str, experiments: list[tuple[dict, dict]]) -> None:
    """The run's plan (plans/<run>.json) and a row per finished unit of its ``(experiment, values)``."""
    plans = Path(storage, run, "plans")
    plans.mkdir(parents=True)
    record = {"grid": run, "scale": "embedded", "experiments": [e for e, _ in experiments], "pretrainings": {}}
    (plans / f"{run}.json").write_text(json.dumps(record))
    store = Store(join(storage, run, "results"))
    base = {"run": run, "grid": run, "status": "ok", "label_set": "fine", "classes": 1000, "labels": 1000,
            "train_images": 4000}  # fmt: skip
    for experiment, values in experiments:
        protocol = next(iter(experiment["protocols"].values()))
        for index, point in enumerate(experiment["points"]):
            network = point["model"]
            store.write(base | {"kind": "pretrain", "unit_id": point["pretrainings"][0], "value": TOP1[network],
                                "metrics": {"imagenet_top1_source": SOURCE.get(network, "measured")}})  # fmt: skip
            for task, units in point["finetunings"].items():
                for seed, unit in enumerate(units):
                    if values[task][index] is None:
                        continue
                    value = values[task][index] + 0.01 * seed
                    metrics = {"top1": value, **chosen_of(protocol, seed)}
                    store.write(base | {"kind": "finetune", "unit_id": unit, "task": task, "seed": seed,
                                        "value": value, "metrics": metrics})  # fmt: skip


def tables_of(markdown: str) -> dict[tuple[str, str | None], list[list[str]]]:
    """Every table of report.md by (the experiment's heading's name, the section's heading), header row first."""
    found, experiment, section = {}, None, None
    for line in markdown.splitlines():
        if line.startswith("## "):
            experiment, section = line[3:].split(":")[0], None
        elif line.startswith("### "):
            section = line[4:]
        elif line.startswith("| "):
            found.setdefault((experiment, section), []).append([c.strip() for c in line.strip("|").split(" | ")])
    return found


def by_first(table: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row for row in table[1:]}


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def mean_values(values: dict, seeds: int) -> dict[str, list[float | None]]:
    """Each network's mean over the seeds (seed s adds 0.01 s)."""
    shift = 0.01 * sum(range(seeds)) / seeds
    return {t: [None if v is None else v + shift for v in vs] for t, vs in values.items()}


def cell_of(values: list[float]) -> str:
    """report.cell's text for these fractions, computed here: mean ± std (n) [Student's t interval]."""
    percent = 100 * np.array(values)
    std = percent.std(ddof=1)
    low, high = stats.t.interval(0.95, len(percent) - 1, loc=percent.mean(), scale=std / math.sqrt(len(percent)))
    return f"{percent.mean():.1f} ± {std:.1f} (n={len(percent)}) [{low:.1f}, {high:.1f}]"


def correlation_text(x, y) -> tuple[str, str]:
    """The Pearson and Spearman cells: scipy's estimates, the report's bootstrap interval (checked elsewhere)."""
    found = correlations(x, y)
    pearson, spearman = stats.pearsonr(x, y).statistic, stats.spearmanr(x, y).statistic
    return (f"{pearson:.3f} [{found['pearson']['low']:.3f}, {found['pearson']['high']:.3f}]",
            f"{spearman:.3f} [{found['spearman']['low']:.3f}, {found['spearman']['high']:.3f}]")  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The union run (fixed features, fine-tuned and from scratch) reported: (report folder, report.md's tables)."""
    storage = str(tmp_path_factory.mktemp("runs"))
    store_run(storage, "kornblith2019", [
        (experiment_of("k_fixed", "fixed_features", FIXED, [0, 1]), FIXED),
        (experiment_of("k_finetune", "finetune_search", FINETUNED, [0]), FINETUNED),
        (experiment_of("k_scratch", "scratch_search", SCRATCH, [0]), SCRATCH),
    ])  # fmt: skip
    assert main([f"storage={storage}", "run=kornblith2019"]) == 0
    folder = Path(storage, "kornblith2019", "report")
    return folder, tables_of((folder / "report.md").read_text())


def test_a_row_per_network_with_its_top1_metrics_and_the_logit_average(report):
    folder, tables = report
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "k_finetune.png", "k_fixed.png",
                                                        "k_scratch.png", "report.md"]  # fmt: skip
    table = tables[("k_fixed", None)]
    assert table[0][:2] == ["network", "ImageNet top-1"] and table[0][-1] == "logit-averaged transfer accuracy"
    rows = by_first(table)
    assert list(rows) == NETWORKS  # five points of one label set and budget stay five networks
    assert rows["alexnet"][1] == "55.0 (n=1) (measured)"
    assert rows["resnet50"][1] == "80.0 (n=1) (published card)"
    assert rows["alexnet"][2] == cell_of([0.60, 0.61]) == "60.5 ± 0.7 (n=2) [54.1, 66.9]"
    means = mean_values(FIXED, 2)
    for index, network in enumerate(NETWORKS):
        average = sum(logit(means[t][index]) for t in TASKS) / len(TASKS)  # by hand
        assert rows[network][-1] == f"{100 / (1 + math.exp(-average)):.1f} (logit {average:+.3f})"
    # alexnet: logits of 0.605, 0.405, 0.705 are 0.4263, -0.3847, 0.8712: mean 0.3043, sigmoid 57.549%.
    assert rows["alexnet"][-1] == "57.5 (logit +0.304)"
    with Image.open(folder / "k_fixed.png") as figure:  # a panel per task and one for the logit average
        assert figure.size == (4 * PANEL_PX[0], PANEL_PX[1])


def test_a_network_without_a_task_is_averaged_over_the_tasks_every_network_has(report):
    markdown = (report[0] / "report.md").read_text()
    assert "the tasks every network has (food101, sun397) of logit(accuracy)" in markdown
    assert "left out: voc_action (some network has no value)" in markdown
    rows = by_first(report[1][("k_finetune", None)])
    assert rows["mobilenetv2_050"][4] == "1 not run"
    average = (logit(0.84) + logit(0.60)) / 2
    assert rows["mobilenetv2_050"][-1] == f"{100 / (1 + math.exp(-average)):.1f} (logit {average:+.3f})"


def test_correlations_match_scipy_on_the_logits_beside_the_paper_s_r(report):
    folder, tables = report
    rows = by_first(tables[("k_fixed", "Correlation with ImageNet top-1")])
    means = mean_values(FIXED, 2)
    x = [logit(TOP1[n]) for n in NETWORKS]
    average = [sum(logit(means[t][i]) for t in TASKS) / len(TASKS) for i in range(len(NETWORKS))]
    pearson, spearman = correlation_text(x, average)
    headline = rows["logit-averaged transfer accuracy"]
    assert headline == ["logit-averaged transfer accuracy", "5", pearson, "0.99", spearman]
    for task in TASKS:
        y = [logit(v) for v in means[task]]
        assert rows[f"{task}: " + ("mAP" if task == "voc_action" else "top-1")][1:] == [
            "5", correlation_text(x, y)[0], "not confirmed", correlation_text(x, y)[1]]  # fmt: skip
    assert rows["sun397: top-1"][4].startswith(f"{stats.spearmanr(x, means['sun397']).statistic:.3f} [")
    assert stats.spearmanr(x, means["sun397"]).statistic == pytest.approx(0.8)  # not a monotone toy: 0.8, not 1
    finetune = by_first(tables[("k_finetune", "Correlation with ImageNet top-1")])
    assert finetune["logit-averaged transfer accuracy"][3] == "0.96"
    assert finetune["voc_action: mAP"][1] == "3"  # the network without a value is left out
    assert by_first(tables[("k_scratch", "Correlation with ImageNet top-1")])["logit-averaged transfer accuracy"][
        3] == "none for scratch_search"  # fmt: skip
    markdown, page = (folder / "report.md").read_text(), (folder / "index.html").read_text()
    assert "logit(transfer accuracy) against logit(ImageNet top-1)" in markdown
    assert f"| {pearson} | 0.99 | {spearman} |" in markdown
    assert f"<td>{pearson}</td><td>0.99</td><td>{spearman}</td>" in page


def test_the_bootstrap_interval_is_seeded_holds_the_estimate_and_matches_a_plain_loop():
    x = np.array([logit(p) for p in TOP1.values()])
    y = np.array([logit(v + 0.005) for v in FIXED["sun397"]])
    found = correlations(x, y)
    assert found == correlations(x, y)  # the same seed, the same interval
    many = np.random.default_rng(0).normal(size=(2, 12))  # five networks have too few distinct resamples to differ
    assert correlations(*many) == correlations(*many)
    assert correlations(*many)["pearson"]["low"] != correlations(*many, seed=1)["pearson"]["low"]
    assert found["resamples"] < 10_000  # resamples of one network repeated are skipped
    for name, scipy_statistic in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr)):
        one = found[name]
        assert one["estimate"] == pytest.approx(scipy_statistic(x, y).statistic)
        assert one["low"] <= one["estimate"] <= one["high"] and one["low"] < one["high"]
        picks = np.random.default_rng(7).integers(0, len(x), (300, len(x)))
        loop = [scipy_statistic(x[p], y[p]).statistic for p in picks if np.ptp(x[p]) and np.ptp(y[p])]
        small = correlations(x, y, seed=7, resamples=300)[name]
        assert [small["low"], small["high"]] == pytest.approx(np.percentile(loop, [2.5, 97.5]))
    assert correlations(x[:2], y[:2])["pearson"] is None
    assert correlations(x, np.ones(len(x)))["pearson"] == {"estimate": None}


def test_two_networks_are_too_few(tmp_path):
    values = {t: vs[:2] for t, vs in FIXED.items()}
    store_run(str(tmp_path), "two", [(experiment_of("k_fixed", "fixed_features", values, [0]), values)])
    assert main([f"storage={tmp_path}", "run=two"]) == 0
    tables = tables_of((tmp_path / "two" / "report" / "report.md").read_text())
    rows = by_first(tables[("k_fixed", "Correlation with ImageNet top-1")])
    assert len(rows) == 4
    for row in rows.values():
        assert row[1] == "2" and row[2] == row[4] == "too few networks"
    assert rows["logit-averaged transfer accuracy"][3] == "0.99"


def test_the_chosen_hyper_parameters_per_network_and_task(report):
    tables = report[1]
    fixed = tables[("k_fixed", "Chosen hyper-parameters")]
    assert fixed[0] == ["network", *TASKS]
    assert by_first(fixed)["resnet10t"][1:] == ["l2=0.001; l2=0.0001"] * 3
    finetune = by_first(tables[("k_finetune", "Chosen hyper-parameters")])
    assert finetune["alexnet"][1:] == ["lr=0.01, weight_decay=1e-05"] * 3
    assert finetune["mobilenetv2_050"][3] == "no finished transfer"


def test_fine_tuned_against_from_scratch_per_task(report):
    tables = report[1]
    for task, title in (("food101", "food101: top-1"), ("sun397", "sun397: top-1"), ("voc_action", "voc_action: mAP")):
        table = tables[("Fine-tuned against from scratch", title)]
        assert table[0] == ["network", "fine-tuned", "from scratch", "fine-tuned − from scratch"]
        rows = by_first(table)
        assert list(rows) == [*NETWORKS[:4], "mean over networks"]
        gaps = [100 * (a - b) for a, b in zip(FINETUNED[task], SCRATCH[task]) if a is not None]
        shown = [rows[n][3] for n in NETWORKS[:4]]
        assert shown == [f"{g:+.1f}" for g in gaps] + (["n/a"] if task == "voc_action" else [])
        assert rows["mean over networks"][3] == cell_of(np.array(gaps) / 100)
    rows = by_first(tables[("Fine-tuned against from scratch", "food101: top-1")])
    assert rows["alexnet"][1:] == ["70.0 (n=1)", "60.0 (n=1)", "+10.0"]
    assert rows["mean over networks"][3] == "16.2 ± 5.2 (n=4) [8.0, 24.5]"  # gaps 10, 14, 20, 21
    page = (report[0] / "index.html").read_text()
    assert "<h2>Fine-tuned against from scratch: k_finetune − k_scratch</h2>" in page
    assert "<td>mean over networks</td><td></td><td></td><td>16.2 ± 5.2 (n=4) [8.0, 24.5]</td>" in page

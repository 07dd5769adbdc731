"""The report, built from stored runs: rows written by the store for a real plan, with values the test chooses,
so that every number on the page can be checked against an independent computation (scipy's Welch test). The
page is opened in Debian's Chromium; the store is also read through a real S3 API on loopback (moto's server)."""

import json
import math
import os

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from PIL import Image
from scipy import stats

from orchestrator.config import load
from orchestrator.plan import make_plan, save
from orchestrator.report import PANEL_COLUMNS, PANEL_PX, main
from orchestrator.store import Store, join
from tasks import TASKS

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def store_run(storage: str, run: str, grid: str, value_of, overrides=(), skip=(), fail=()) -> tuple:
    """A run of ``grid`` in ``storage`` as the orchestrator leaves it: its plan, and a row per unit written by the
    store, whose value is ``value_of(point, replicate, task)`` (task None: the pretraining); units at the
    positions ``skip`` (of the run's units, in plan order) have no row and those at ``fail`` failed."""
    config = load([f"grid={grid}", *overrides])
    plan = make_plan(config)
    save(plan, config, join(storage, run))
    store = Store(join(storage, run, "results"))
    position = 0
    for experiment in plan.experiments:
        for point in experiment.points:
            units = [(unit, replicate, None) for replicate, unit in enumerate(point["pretrainings"])]
            units += [
                (unit, replicate, task)
                for task, ids in point["finetunings"].items()
                for replicate, unit in enumerate(ids)
            ]
            for unit, replicate, task in units:
                position += 1
                if position in skip:
                    continue
                row = {"run": run, "grid": grid, "kind": "finetune" if task else "pretrain", "unit_id": unit, "task": task,
                       "label_set": point["label_set"], "classes": point["classes"], "labels": point["labels"],
                       "train_images": point["classes"] * (point["images_per_class"] or 40)}  # fmt: skip
                if position in fail:
                    store.write(row | {"status": "failed", "error": "Traceback ...\nRuntimeError: the node died"})
                else:
                    value = value_of(point, replicate, task)
                    store.write(row | {"status": "ok", "value": value, "metrics": {"nn_top1": value / 2}})
    return config, plan


def classes_vs_examples_values(point, replicate, task):
    """SUN397: 500 classes 10 points below 1000 (a clear loss); VOC action: the same within a wide spread."""
    if task is None:
        return 0.01 * point["point"]
    if task == "sun397":
        return (0.40 if point["label_set"] == "fine" else 0.30) + 0.01 * replicate
    spread = {"fine": (0.40, 0.50), "random_500": (0.38, 0.52)}.get(point["label_set"], (0.2, 0.2))
    return spread[replicate]


def images_per_class_values(point, replicate, task):
    """Pretraining top-1 rises with images per class, far beyond the spread between seeds."""
    size = point["images_per_class"] or 40
    return (0.01 * size + 0.002 * replicate) if task is None else 0.3


def expected_size(config) -> tuple[int, int]:
    tasks = [TASKS[t] for t in make_plan(config).experiments[0].tasks]
    panels = 1 + len(tasks) + sum(t.protocol == "probe" for t in tasks)
    columns = min(panels, PANEL_COLUMNS)
    return PANEL_PX[0] * columns, PANEL_PX[1] * math.ceil(panels / columns)


def welch(a, b) -> tuple[float, float, float]:
    a, b = 100 * np.array(a), 100 * np.array(b)
    interval = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return a.mean() - b.mean(), interval.low, interval.high


def findings_rows(markdown: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in markdown.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [c.strip() for c in cells] for cells in rows}


def test_report_of_a_stored_run_holds_its_numbers_figures_and_findings(tmp_path):
    storage = str(tmp_path)
    # Unit 2 (the fine pretraining's first SUN397 fine-tuning) failed; unit 15 (random_250's second VOC action
    # fine-tuning) never ran.
    config, plan = store_run(storage, "cve", "classes_vs_examples", classes_vs_examples_values, fail={2}, skip={15})
    assert main([f"storage={storage}", "run=cve"]) == 0
    report = tmp_path / "cve" / "report"
    assert sorted(p.name for p in report.iterdir()) == ["classes_vs_examples.png", "index.html", "report.md"]
    with Image.open(report / "classes_vs_examples.png") as figure:
        assert figure.format == "PNG" and figure.size == expected_size(config) == (1200, 320)

    markdown = (report / "report.md").read_text()
    table = findings_rows(markdown)
    assert "20 units planned: 18 finished, 1 failed, 1 not run" in markdown
    # fine / SUN397: one fine-tuning failed, the other (replicate 1) holds 0.41.
    assert table["fine (1000 labels, budget 3000)"][2] == "41.0 (n=1); 1 failed"
    assert table["random_500 (500 labels, budget 3000)"][2] == "30.5 ± 0.7 (n=2) [24.1, 36.9]"
    assert table["random_500 (500 labels, budget 3000)"][3].startswith("45.0 ± 9.9 (n=2)")
    assert table["up_down_127 (127 labels, budget 3000)"][3] == "20.0 ± 0.0 (n=2) [20.0, 20.0]"
    assert table["random_250 (250 labels, budget 3000)"][3] == "20.0 (n=1); 1 not run"
    low, high = stats.t.interval(0.95, 1, loc=30.5, scale=np.std([30, 31], ddof=1) / math.sqrt(2))
    assert f"[{low:.1f}, {high:.1f}]" == "[24.1, 36.9]"

    claims = {finding["task"]: finding["claim"] for finding in plan.experiments[0].findings}
    sun, voc, det = (table[claims[task]] for task in ("sun397", "voc_action", "pascal_det"))
    assert sun[2] == "-10.50 (n=2, 1)" and sun[3] == "n/a"
    assert sun[-1] == "inconclusive (needs 2 replicates a side, has 2 and 1; some units failed or have not run)"
    estimate, low, high = welch([0.38, 0.52], [0.40, 0.50])
    assert voc[2] == f"{estimate:+.2f} (n=2, 2)" and voc[3] == f"[{low:+.2f}, {high:+.2f}]"
    assert voc[4] == "> -1" and voc[-1] == "inconclusive (the interval straddles the threshold)"
    assert det[2] == "n/a" and det[-1] == "not run (pascal_det is not among this run's tasks)"

    # The missing fine-tuning finishes at 0.41 and the failed one is rerun to 0.40: the SUN397 finding is judged.
    store_run(storage, "cve", "classes_vs_examples", classes_vs_examples_values)
    assert main([f"storage={storage}", "run=cve"]) == 0
    sun = findings_rows((report / "report.md").read_text())[claims["sun397"]]
    estimate, low, high = welch([0.30, 0.31], [0.40, 0.41])
    assert sun[2] == f"{estimate:+.2f} (n=2, 2)" == "-10.00 (n=2, 2)" and sun[3] == f"[{low:+.2f}, {high:+.2f}]"
    assert high < -1 and sun[-1] == "does not hold"
    html = (report / "index.html").read_text()
    assert "does not hold" in html and "data:image/png;base64," in html and "-10.00 (n=2, 2)" in html


def test_the_paper_s_finding_holds_on_the_images_per_class_axis_and_runs_combine(tmp_path):
    storage = str(tmp_path)
    store_run(storage, "cve", "classes_vs_examples", classes_vs_examples_values)
    config, plan = store_run(storage, "ipc", "images_per_class", images_per_class_values)
    assert main([f"storage={storage}", "run=cve,ipc"]) == 0
    report = tmp_path / "reports" / "cve+ipc"
    assert {p.name for p in report.iterdir()} == {
        "classes_vs_examples.png",
        "images_per_class.png",
        "index.html",
        "report.md",
    }
    table = findings_rows((report / "report.md").read_text())
    rises = next(f for f in plan.experiments[0].findings if f["task"] == "pretrain")
    sizes = [size for size in (2, 5, 10, 20, 40) for _ in range(2)]  # every image of the tiny classes is 40 here
    top1 = [100 * (0.01 * size + 0.002 * replicate) for size in (2, 5, 10, 20, 40) for replicate in range(2)]
    fit = stats.linregress(np.log2(sizes), top1)
    low, high = np.array(stats.t.interval(0.95, len(sizes) - 2)) * fit.stderr + fit.slope
    assert (
        rises["trend"] == "images_per_class"
        and table[rises["claim"]][1] == "pretrain: slope per doubling of images per class, every point"
    )
    assert table[rises["claim"]][2:5] == [f"{fit.slope:+.2f} (n=10)", f"[{low:+.2f}, {high:+.2f}]", "> +0"]
    assert table[rises["claim"]][-1] == "holds"
    low, high = stats.t.interval(0.95, 1, loc=40.1, scale=np.std([40, 40.2], ddof=1) / math.sqrt(2))
    assert table["fine (1000 labels, all images)"][1] == f"40.1 ± 0.1 (n=2) [{low:.1f}, {high:.1f}]"
    with Image.open(report / "images_per_class.png") as figure:
        assert figure.size == expected_size(config)


def test_bad_input_gets_a_clear_message_and_nothing_is_written(tmp_path, capsys):
    storage = str(tmp_path)
    assert main([f"storage={storage}", "run=nope"]) == 2
    assert "unknown run 'nope'" in capsys.readouterr().err

    config = load(["grid=classes_vs_examples"])
    save(make_plan(config), config, join(storage, "empty"))
    assert main([f"storage={storage}", "run=empty"]) == 2
    assert "run 'empty' has no results yet" in capsys.readouterr().err
    assert main([f"storage={storage}", "run=emtpy"]) == 2
    assert "did you mean empty?" in capsys.readouterr().err

    Store(join(storage, "old", "results")).write({"kind": "pretrain", "unit_id": "u", "status": "ok", "value": 0.1})
    assert main([f"storage={storage}", "run=old"]) == 2
    error = capsys.readouterr().err
    assert "run 'old' has no plan" in error and "Run its command again" in error
    assert not (tmp_path / "empty" / "report").exists() and not (tmp_path / "old" / "report").exists()

    store_run(storage, "cve", "classes_vs_examples", classes_vs_examples_values)
    assert main([f"storage={storage}", "run=cve"]) == 0
    report = tmp_path / "cve" / "report"
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    older = tmp_path / "cve" / "results" / "finetune-0123456789abcdef.parquet"
    pq.write_table(pa.table({"unit_id": ["0123456789abcdef"], "kind": ["finetune"], "status": ["ok"],
                             "value": ["0.5"], "metrics": ["{}"], "classes": [1], "train_images": [1]}), older)  # fmt: skip
    assert main([f"storage={storage}", "run=cve"]) == 2
    error = capsys.readouterr().err
    assert f"{older} was written with an older result schema: column 'value' is string" in error
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before  # the last good report, untouched
    assert not [p for p in (tmp_path / "cve").iterdir() if p.name.startswith(".")]

    assert main([f"storage={storage}", "rnu=cve"]) == 2
    assert "unknown key 'rnu'; did you mean run?" in capsys.readouterr().err
    assert main([f"storage={storage}"]) == 2
    assert "name a run" in capsys.readouterr().err


def test_the_report_reads_and_writes_through_s3(s3_storage, capsys):
    store_run(s3_storage, "cve", "classes_vs_examples", classes_vs_examples_values)
    assert main([f"storage={s3_storage}", "run=cve"]) == 0
    assert capsys.readouterr().out.strip() == f"{s3_storage}/cve/report"
    filesystem, path = pafs.FileSystem.from_uri(f"{s3_storage}/cve/report")
    names = {e.base_name for e in filesystem.get_file_info(pafs.FileSelector(path))}
    assert names == {"classes_vs_examples.png", "index.html", "report.md"}
    with filesystem.open_input_stream(f"{path}/report.md") as stream:
        assert "30.5 ± 0.7 (n=2) [24.1, 36.9]" in stream.read().decode()


def test_the_page_opens_in_chromium_without_errors(tmp_path):
    from playwright.sync_api import sync_playwright

    assert os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}: ./setup.sh installs it (or set CHROMIUM)"
    config, plan = store_run(str(tmp_path), "huh", "huh2016", images_per_class_values, skip={3}, fail={4})
    assert main([f"storage={tmp_path}", "run=huh"]) == 0
    page_file = tmp_path / "huh" / "report" / "index.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        problems = []
        page.on(
            "console", lambda message: problems.append(message.text) if message.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(request.url))
        page.goto(page_file.as_uri())
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
        )
        headings = page.locator("h2").all_inner_texts()
        cells = page.locator("td").all_inner_texts()
        browser.close()
    assert problems == []
    assert [name for name, *_ in images] == [e.name for e in plan.experiments] == [h.split(":")[0] for h in headings]
    for name, complete, width, height in images:
        with Image.open(tmp_path / "huh" / "report" / f"{name}.png") as figure:
            assert complete and (width, height) == figure.size
    assert "holds" in cells and "1 failed" in " ".join(cells) and "not run" in " ".join(cells)
    assert json.loads((tmp_path / "huh" / "plans" / "huh2016.json").read_text())["grid"] == "huh2016"

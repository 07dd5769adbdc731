"""The report of a run: python -m orchestrator.report run=NAME [run=OTHER ...] [storage=runs] [out=DIR]

    python -m orchestrator.report run=classes_vs_examples
    python -m orchestrator.report run=huh2016 storage=s3://bucket/runs
    python -m orchestrator.report run=seeds-0-1 run=seed-2 out=runs/reports/all-seeds   # several runs, combined

It reads each run's plans (``<storage>/<run>/plans/<grid>.json``, written when the run starts: its experiments,
their points, findings and units) and its results (the Parquet store), through any pyarrow filesystem, and
writes ``<storage>/<run>/report/`` (several runs: ``<storage>/reports/<run>+<run>/``), whole or not at all:

    index.html        self-contained (figures embedded): every experiment's figure, table and findings
    report.md         the same tables and findings, with the figures beside it
    <experiment>.png  one figure per experiment, in the paper's form (matplotlib)

Numbers are percent (top-1 accuracy, mAP). A cell is the mean ± std over a point's replicates (pretraining seeds
x fine-tuning seeds), their number n, and a 95% confidence interval (Student's t); units that failed or have not
run are shown as such, so a partial run gives a partial report. A finding compares two points (the difference
of their means with its 95% interval, Welch's t) or follows a trend (the least-squares slope per doubling of
images per class or labels over every replicate, with its 95% interval), and gets a verdict: holds when the
whole interval satisfies the claim, does not hold when none of it does, inconclusive otherwise or with too few
replicates. The
paper's own difference is shown where ../shared/PAPERS.md confirms it, and drawn on the figure from this run's
value of the point it is measured against.
"""

import base64
import difflib
import html
import io
import json
import math
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a cluster node or CI machine
import matplotlib.pyplot as plt  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.fs as pafs  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from scipy import stats  # noqa: E402

from orchestrator.config import PRETRAIN  # noqa: E402
from orchestrator.store import SCHEMA, Store, filesystem_of, join, write_whole  # noqa: E402
from tasks import TASKS  # noqa: E402

PANEL_PX, PANEL_COLUMNS, DPI = (400, 320), 4, 100  # every figure: panels of 400 x 320 px, up to 4 a row
NEEDED_COLUMNS = ("unit_id", "kind", "status", "value", "metrics", "classes", "train_images")
PAPER = "Huh, Agrawal, Efros (2016)"


class ReportError(ValueError):
    pass


@dataclass(frozen=True)
class Series:
    """One metric a figure panel and a table column show: a task's primary metric, or another of its metrics."""

    task: str  # a task name, or PRETRAIN
    key: str | None = None  # a key of the unit's metrics (None: the row's value, the task's primary metric)

    @property
    def title(self) -> str:
        if self.task == PRETRAIN:
            return "pretraining: ImageNet val top-1"
        metric = (self.key or TASKS[self.task].metric).replace("nn_", "nearest-neighbour ")
        return f"{self.task}: {metric.replace('top1', 'top-1').replace('map', 'mAP')}"


# Reading -------------------------------------------------------------------------------------------------


def _runs_in(filesystem, storage: str) -> list[str]:
    try:
        entries = filesystem.get_file_info(pafs.FileSelector(storage, allow_not_found=True))
    except OSError:
        return []
    return sorted(e.base_name for e in entries if e.type == pafs.FileType.Directory and not e.base_name.startswith("."))


def read_run(storage: str, run: str) -> tuple[list[dict], dict[str, dict]]:
    """The run's experiments (from its plans) and its rows by unit id; ReportError says what is wrong."""
    filesystem, root = filesystem_of(join(storage, run))
    if filesystem.get_file_info(root).type != pafs.FileType.Directory:
        known = _runs_in(filesystem, filesystem_of(storage)[1])
        close = difflib.get_close_matches(run, known, n=3)
        raise ReportError(f"unknown run {run!r}: no folder {join(storage, run)}"
                          + (f"; did you mean {', '.join(close)}?" if close else "")
                          + (f" Runs in {storage}: {', '.join(known)}" if known else f" ({storage} holds no runs)"))  # fmt: skip
    plans = [e for e in filesystem.get_file_info(pafs.FileSelector(join(root, "plans"), allow_not_found=True))
             if e.base_name.endswith(".json")]  # fmt: skip
    if not plans:
        raise ReportError(f"run {run!r} has no plan ({join(storage, run, 'plans')}/<grid>.json): it was started by a "
                          "version without reports. Run its command again (finished units are skipped), which writes "
                          "the plan, then report.")  # fmt: skip
    experiments = []
    for entry in sorted(plans, key=lambda e: e.path):
        with filesystem.open_input_stream(entry.path) as stream:
            experiments += json.loads(stream.read())["experiments"]
    results = join(root, "results")
    files = [e for e in filesystem.get_file_info(pafs.FileSelector(results, allow_not_found=True))
             if e.base_name.endswith(".parquet") and not e.base_name.startswith((".", "_"))]  # fmt: skip
    if not files:
        raise ReportError(f"run {run!r} has no results yet ({join(storage, run, 'results')} is empty): nothing to "
                          "report. Its units write their rows as they finish.")  # fmt: skip
    for entry in files:
        _check_schema(
            pq.read_schema(entry.path, filesystem=filesystem), join(storage, run, "results", entry.base_name)
        )
    rows = {}
    for row in Store(join(storage, run, "results")).read().to_pylist():
        rows[row["unit_id"]] = _better(rows.get(row["unit_id"]), row)
    return experiments, rows


def _check_schema(schema: pa.Schema, where: str) -> None:
    """A results file this version can read: every column the report needs, with the type the store writes."""
    for name in NEEDED_COLUMNS:
        if name not in schema.names:
            raise ReportError(f"{where} was written with an older result schema: it has no column {name!r}. Delete "
                              "the file and run the command again to redo that unit.")  # fmt: skip
    for field in schema:
        if field.name in SCHEMA.names and field.type != SCHEMA.field(field.name).type:
            raise ReportError(f"{where} was written with an older result schema: column {field.name!r} is "
                              f"{field.type}, this version writes {SCHEMA.field(field.name).type}. Delete the file "
                              "and run the command again to redo that unit.")  # fmt: skip


def _better(old: dict | None, new: dict) -> dict:
    """Of two rows of one unit (from two runs), the finished one, else the later."""
    if old is None:
        return new
    return max(old, new, key=lambda r: (r["status"] == "ok", r["finished_at"]))


def combine(experiments: list[dict]) -> list[dict]:
    """The experiments of several plans, one per name: points with the same label set and size are one point,
    whose units are all of theirs."""
    combined = {}
    for experiment in experiments:
        into = combined.setdefault(experiment["name"], {**experiment, "points": [], "tasks": []})
        into["tasks"] += [t for t in experiment["tasks"] if t not in into["tasks"]]
        for point in experiment["points"]:
            key = (point["label_set"], point["images_per_class"], point["budget"])
            same = next(
                (p for p in into["points"] if (p["label_set"], p["images_per_class"], p["budget"]) == key), None
            )
            if same is None:
                into["points"].append({**point, "pretrainings": list(point["pretrainings"]),
                                       "finetunings": {t: list(u) for t, u in point["finetunings"].items()}})  # fmt: skip
                continue
            same["pretrainings"] += [u for u in point["pretrainings"] if u not in same["pretrainings"]]
            for task, units in point["finetunings"].items():
                same["finetunings"].setdefault(task, [])
                same["finetunings"][task] += [u for u in units if u not in same["finetunings"][task]]
    return list(combined.values())


# Numbers -------------------------------------------------------------------------------------------------


def units_of(point: dict, series: Series) -> list[str]:
    return point["pretrainings"] if series.task == PRETRAIN else point["finetunings"].get(series.task, [])


def measure(point: dict, series: Series, rows: dict) -> dict:
    """The point's values of ``series`` in percent, and how many of its units failed or have not run."""
    values, failed, missing = [], 0, 0
    for unit in units_of(point, series):
        row = rows.get(unit)
        if row is None:
            missing += 1
        elif row["status"] != "ok":
            failed += 1
        else:
            value = row["value"] if series.key is None else json.loads(row["metrics"] or "{}").get(series.key)
            if value is None:
                missing += 1
            else:
                values.append(100 * value)
    return {"values": values, "failed": failed, "missing": missing, **summary(values)}


def summary(values: list[float]) -> dict:
    """n, mean, std (n - 1) and the 95% interval of the mean (Student's t; None below 2 values)."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "std": None, "low": None, "high": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "std": None, "low": None, "high": None}
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def difference(a: dict, b: dict) -> dict:
    """a's mean minus b's, with its 95% interval (Welch's t; None unless both sides have 2 values or more)."""
    if not a["n"] or not b["n"]:
        return {"estimate": None, "low": None, "high": None}
    estimate = a["mean"] - b["mean"]
    if a["n"] < 2 or b["n"] < 2:
        return {"estimate": estimate, "low": None, "high": None}
    va, vb = a["std"] ** 2 / a["n"], b["std"] ** 2 / b["n"]
    se = math.sqrt(va + vb)
    if se == 0:
        return {"estimate": estimate, "low": estimate, "high": estimate}
    freedom = (va + vb) ** 2 / (va**2 / (a["n"] - 1) + vb**2 / (b["n"] - 1))
    half = stats.t.ppf(0.975, freedom) * se
    return {"estimate": estimate, "low": estimate - half, "high": estimate + half}


def slope(x: list[float], measured: list[dict]) -> dict:
    """The least-squares slope of the values against log2(x) over every replicate of every point (the change per
    doubling), with its 95% interval (t with n - 2 degrees of freedom; None below 3 values or 2 sizes)."""
    pairs = [(math.log2(position), value) for position, m in zip(x, measured) for value in m["values"]]
    if not pairs:
        return {"estimate": None, "low": None, "high": None, "n": (0,)}
    if len(pairs) < 3 or len({p for p, _ in pairs}) < 2:
        return {
            "estimate": None if len({p for p, _ in pairs}) < 2 else 0.0,
            "low": None,
            "high": None,
            "n": (len(pairs),),
        }
    fit = stats.linregress(*zip(*pairs))
    half = stats.t.ppf(0.975, len(pairs) - 2) * fit.stderr
    return {"estimate": fit.slope, "low": fit.slope - half, "high": fit.slope + half, "n": (len(pairs),)}


def judge(finding: dict, experiment: dict, rows: dict) -> dict:
    """The finding with its two points' numbers, the difference, its interval and the verdict."""
    series = Series(finding["task"])
    points = {p["point"]: p for p in experiment["points"]}
    compare, against = points.get(finding["compare"]), points.get(finding["against"])
    judged = {**finding, "estimate": None, "low": None, "high": None}
    if not finding["trend"] and (compare is None or against is None):
        return judged | {"verdict": "not run", "why": "this run's grid points have no single point it compares"}
    if finding["task"] != PRETRAIN and finding["task"] not in experiment["tasks"]:
        return judged | {"verdict": "not run", "why": f"{finding['task']} is not among this run's tasks"}
    if finding["trend"]:
        measured = [measure(point, series, rows) for point in experiment["points"]]
        judged |= slope(_axis(experiment, rows, finding["trend"])[0], measured)
        needed = "3 values at 2 sizes or more"
    else:
        measured = [measure(compare, series, rows), measure(against, series, rows)]
        judged |= difference(*measured) | {"n": tuple(m["n"] for m in measured)}
        needed = "2 replicates a side, has {} and {}".format(*judged["n"])
    partial = "some units failed or have not run" if any(m["failed"] + m["missing"] for m in measured) else ""
    if judged["estimate"] is None:
        verdict, why = "not measured", "a point has no finished unit yet"
    elif judged["low"] is None:
        verdict, why = "inconclusive", f"needs {needed}"
    else:
        low, high, within = judged["low"], judged["high"], finding["within"]
        if finding["above"] is not None:
            holds, fails = low > finding["above"], high < finding["above"]
        elif finding["below"] is not None:
            holds, fails = high < finding["below"], low > finding["below"]
        else:
            holds, fails = -within < low and high < within, high < -within or low > within
        verdict = "holds" if holds else "does not hold" if fails else "inconclusive"
        why = "the interval straddles the threshold" if verdict == "inconclusive" else ""
    return judged | {"verdict": verdict, "why": "; ".join(filter(None, [why, partial]))}


def threshold(finding: dict) -> str:
    if finding["above"] is not None:
        return f"> {finding['above']:+g}"
    if finding["below"] is not None:
        return f"< {finding['below']:+g}"
    return f"within ±{finding['within']:g}"


# Figures -------------------------------------------------------------------------------------------------


def series_of(experiment: dict) -> list[Series]:
    """The pretraining's top-1, each task's primary metric, and a probe's nearest-neighbour accuracy."""
    found = [Series(PRETRAIN)]
    for task in experiment["tasks"]:
        found.append(Series(task))
        if TASKS[task].protocol == "probe":
            found.append(Series(task, "nn_top1"))
    return found


def _axis(experiment: dict, rows: dict, axis: str) -> tuple[list[float], list[str], str | None]:
    """Where each point sits on an axis (images_per_class, labels or label_set), its tick label, and the axis's
    scale. A point with every image sits at its pretrainings' mean images per class."""
    points = experiment["points"]
    if axis == "labels":
        return [p["labels"] for p in points], [str(p["labels"]) for p in points], "log"
    if axis == "images_per_class":
        sizes = [p["images_per_class"] for p in points]
        largest = max((s for s in sizes if s), default=1)
        positions, ticks = [], []
        for point, size in zip(points, sizes):
            if size:
                positions.append(size), ticks.append(str(size))
                continue
            done = [
                rows[u] for u in point["pretrainings"] if rows.get(u, {}).get("status") == "ok" and rows[u]["classes"]
            ]
            mean = sum(r["train_images"] / r["classes"] for r in done) / len(done) if done else 2 * largest
            positions.append(mean), ticks.append(f"all\n(~{mean:.0f})" if done else "all")
        return positions, ticks, "log"
    return list(range(len(points))), [p["label_set"] for p in points], None


def draw(experiment: dict, rows: dict) -> bytes:
    """The experiment's figure as PNG bytes: one panel per series, PANEL_PX each."""
    series = series_of(experiment)
    columns = min(len(series), PANEL_COLUMNS)
    lines = math.ceil(len(series) / columns)
    figure, axes = plt.subplots(lines, columns, squeeze=False,
                                figsize=(PANEL_PX[0] * columns / DPI, PANEL_PX[1] * lines / DPI), dpi=DPI)  # fmt: skip
    x, ticks, scale = _axis(experiment, rows, experiment["figure"]["x"])
    points, findings = experiment["points"], experiment["findings"]
    for index, (one, axis) in enumerate(zip(series, axes.flat)):
        measured = [measure(point, one, rows) for point in points]
        have = [i for i, m in enumerate(measured) if m["n"]]
        means = [measured[i]["mean"] for i in have]
        errors = [measured[i]["std"] or 0 for i in have]
        if scale is None:
            axis.bar([x[i] for i in have], means, yerr=errors, capsize=3, color="#4878a8", label="this run")
        else:
            axis.errorbar(
                [x[i] for i in have], means, yerr=errors, marker="o", capsize=3, label="this run (mean ± std)"
            )
            axis.set_xscale(scale)
        for i in have:
            axis.scatter([x[i]] * measured[i]["n"], measured[i]["values"], s=8, color="black", alpha=0.5, zorder=3)
        for i, m in enumerate(measured):
            if not m["n"]:
                axis.annotate("not run" if not m["failed"] else "failed", (x[i], 0), xycoords=("data", "axes fraction"),
                              ha="center", va="bottom", fontsize=7, color="#a00000", rotation=90)  # fmt: skip
        for finding in findings:
            if (
                finding["paper"] is None
                or finding["task"] != one.task
                or one.key
                or None in (finding["compare"], finding["against"])
            ):
                continue
            against = next(m for p, m in zip(points, measured) if p["point"] == finding["against"])
            if not against["n"]:
                continue
            where = x[[p["point"] for p in points].index(finding["compare"])]
            axis.scatter([where], [against["mean"] + finding["paper"]], marker="*", s=120, color="#d62728", zorder=4,
                         label=f"{PAPER}: {finding['paper']:+g}")  # fmt: skip
        # Label counts crowd at the log axis's top end (753, 918, 1000): upright numbers would overlap.
        rotation = {"images_per_class": 0, "labels": 90}.get(experiment["figure"]["x"], 30)
        axis.set_xticks(x, ticks, fontsize=7, rotation=rotation, ha="right" if rotation == 30 else "center")
        axis.minorticks_off()
        axis.set_title(one.title, fontsize=9)
        axis.set_ylabel("percent", fontsize=8)
        axis.tick_params(axis="y", labelsize=7)
        if index == 0 or any(f["paper"] is not None and f["task"] == one.task and not one.key for f in findings):
            axis.legend(fontsize=6, loc="best")
    for axis in list(axes.flat)[len(series) :]:
        axis.axis("off")
    figure.suptitle(experiment["figure"]["title"], fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)  # no tight bbox: every figure is exactly its panels' size
    plt.close(figure)
    return buffer.getvalue()


# Tables and pages ----------------------------------------------------------------------------------------


def cell(measured: dict) -> str:
    """``mean ± std (n) [low, high]``, and what failed or has not run."""
    parts = []
    if measured["n"]:
        text = f"{measured['mean']:.1f}"
        text += f" ± {measured['std']:.1f}" if measured["std"] is not None else ""
        text += f" (n={measured['n']})"
        text += f" [{measured['low']:.1f}, {measured['high']:.1f}]" if measured["low"] is not None else ""
        parts.append(text)
    if measured["failed"]:
        parts.append(f"{measured['failed']} failed")
    if measured["missing"]:
        parts.append(f"{measured['missing']} not run")
    return "; ".join(parts) or "no units"


def point_name(point: dict) -> str:
    size = (f"{point['images_per_class']}/class" if point["images_per_class"]
            else f"budget {point['budget']}" if point["budget"] else "all images")  # fmt: skip
    return f"{point['label_set']} ({point['labels']} labels, {size})"


def tables(experiment: dict, rows: dict) -> tuple[list[str], list[list[str]]]:
    """The experiment's table: a row per point, a column per series."""
    series = series_of(experiment)
    header = ["point", *(s.title for s in series)]
    body = [[point_name(point), *(cell(measure(point, s, rows)) for s in series)] for point in experiment["points"]]
    return header, body


def findings_table(judged: list[dict], experiment: dict) -> tuple[list[str], list[list[str]]]:
    points = {p["point"]: point_name(p) for p in experiment["points"]} | {None: "(not in this run)"}
    header = ["finding", "compared", "difference or slope (points)", "95% interval", "claim", "paper", "verdict"]
    body = []
    for f in judged:
        interval = f"[{f['low']:+.2f}, {f['high']:+.2f}]" if f["low"] is not None else "n/a"
        counts = ", ".join(map(str, f.get("n", ())))
        estimate = f"{f['estimate']:+.2f} (n={counts})" if f["estimate"] is not None else "n/a"
        compared = (f"{f['task']}: slope per doubling of {f['trend'].replace('_', ' ')}, every point" if f["trend"]
                    else f"{f['task']}: {points[f['compare']]} − {points[f['against']]}")  # fmt: skip
        verdict = f["verdict"] + (f" ({f['why']})" if f.get("why") else "")
        paper = f"{f['paper']:+g}" if f["paper"] is not None else "not confirmed"
        body.append([f["claim"], compared, estimate, interval, threshold(f), paper, verdict])
    return header, body


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    escape = lambda text: str(text).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(map(escape, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(escape, row)) + " |" for row in body])


def html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"


def unit_counts(experiment: dict, rows: dict) -> str:
    units = {
        u
        for p in experiment["points"]
        for u in [*p["pretrainings"], *(x for us in p["finetunings"].values() for x in us)]
    }
    finished = sum(rows.get(u, {}).get("status") == "ok" for u in units)
    failed = sum(u in rows and rows[u]["status"] != "ok" for u in units)
    return f"{len(units)} units planned: {finished} finished, {failed} failed, {len(units) - finished - failed} not run"


def build(runs: list[str], experiments: list[dict], rows: dict) -> dict[str, bytes]:
    """Every file of the report by name."""
    files, markdown, body = {}, [], []
    title = f"Report: {' + '.join(runs)}"
    intro = ("Numbers are percent. A cell: mean ± std over the point's replicates (pretraining seeds × fine-tuning "
             "seeds), n, and the 95% confidence interval of the mean. A finding's estimate is a difference of two "
             "points' means (95% interval: Welch's t) or a slope per doubling over every point and replicate (95% "
             "interval: t with n - 2 degrees of freedom); its verdict: holds when the whole interval satisfies the "
             "claim, does not hold when none of it does, inconclusive otherwise. "
             f"The paper column is {PAPER}'s own difference where ../shared/PAPERS.md confirms it.")  # fmt: skip
    markdown += [f"# {title}", "", intro, ""]
    for experiment in experiments:
        name = experiment["name"]
        judged = [judge(f, experiment, rows) for f in experiment["findings"]]
        files[f"{name}.png"] = draw(experiment, rows)
        header, table = tables(experiment, rows)
        counts = unit_counts(experiment, rows)
        markdown += [f"## {name}: {experiment['figure']['title']}", "", counts, "", f"![{name}]({name}.png)", "",
                     markdown_table(header, table), ""]  # fmt: skip
        image = base64.b64encode(files[f"{name}.png"]).decode()
        body += [f"<h2 id='{html.escape(name)}'>{html.escape(name)}: {html.escape(experiment['figure']['title'])}</h2>",
                 f"<p>{html.escape(counts)}</p>", f"<img alt='{html.escape(name)}' src='data:image/png;base64,{image}'>",
                 html_table(header, table)]  # fmt: skip
        if judged:
            header, table = findings_table(judged, experiment)
            markdown += ["### The paper's findings", "", markdown_table(header, table), ""]
            body += ["<h3>The paper's findings</h3>", html_table(header, table)]
    files["report.md"] = "\n".join(markdown).encode()
    style = ("body{font-family:sans-serif;margin:2em;max-width:1700px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:left}img{max-width:100%}")  # fmt: skip
    files["index.html"] = (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1><p>{html.escape(intro)}</p>"
        + "".join(body)
        + "</body></html>"
    ).encode()
    return files


# Writing -------------------------------------------------------------------------------------------------


def publish(files: dict[str, bytes], out: str) -> None:
    """Writes the report folder whole: on a local disk built aside and swapped in by renames; on an object
    store each object is written whole (``store.write_whole``), index.html last, and files of an older report are removed."""
    filesystem, path = filesystem_of(out)
    parent, name = path.rsplit("/", 1) if "/" in path else (".", path)
    if isinstance(filesystem, pafs.LocalFileSystem):
        aside, old = join(parent, f".{name}.{uuid.uuid4().hex}"), join(parent, f".{name}.old.{uuid.uuid4().hex}")
        filesystem.create_dir(aside, recursive=True)
        try:
            for file, data in files.items():
                with filesystem.open_output_stream(join(aside, file)) as stream:
                    stream.write(data)
        except BaseException:
            filesystem.delete_dir(aside)
            raise
        replaced = filesystem.get_file_info(path).type == pafs.FileType.Directory
        if replaced:
            filesystem.move(path, old)
        filesystem.move(aside, path)
        if replaced:
            filesystem.delete_dir(old)
        return
    stale = [e.path for e in filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
             if e.base_name not in files]  # fmt: skip
    for file in sorted(files, key=lambda f: f == "index.html"):
        write_whole(filesystem, join(path, file), files[file])
    for entry in stale:
        filesystem.delete_file(entry)


def write_report(storage: str, runs: list[str], out: str | None = None) -> str:
    """Reads the runs, builds the report and writes it; returns where. Nothing is written on a ReportError."""
    if not runs:
        raise ReportError("name a run: python -m orchestrator.report run=NAME")
    experiments, rows = [], {}
    for run in runs:
        found, run_rows = read_run(storage, run)
        experiments += found
        for unit, row in run_rows.items():
            rows[unit] = _better(rows.get(unit), row)
    out = out or (join(storage, runs[0], "report") if len(runs) == 1 else join(storage, "reports", "+".join(runs)))
    publish(build(runs, combine(experiments), rows), out)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if {"-h", "--help"} & set(argv):
        print(__doc__)
        return 0
    runs, options = [], {"storage": "runs", "out": None}
    try:
        for argument in argv:
            key, equals, value = argument.partition("=")
            if not equals or not value:
                raise ReportError(f"arguments are key=value (run=NAME, storage=..., out=...), not {argument!r}")
            if key in ("run", "runs"):
                runs += [r for r in value.split(",") if r]
            elif key in options:
                options[key] = value
            else:
                close = difflib.get_close_matches(key, ["run", "storage", "out"], n=1)
                raise ReportError(f"unknown key {key!r}" + (f"; did you mean {close[0]}?" if close else "")
                                  + " Keys: run, storage, out")  # fmt: skip
        storage = (
            options["storage"] if "://" in options["storage"] else str(Path(options["storage"]).expanduser().resolve())
        )
        print(write_report(storage, runs, options["out"]))
    except (ReportError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

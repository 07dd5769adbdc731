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

An experiment whose figure's x axis is imagenet_top1 (Kornblith, Shlens, Le 2019: each point a pretrained network,
its pretraining rows' value the network's ImageNet top-1) shows instead: a table of the networks (ImageNet top-1
with where it comes from, each task's metric, and the logit-averaged transfer accuracy: the mean over the tasks
every network has of logit(accuracy), accuracies clipped to [1e-4, 1 - 1e-4], as a percentage through the sigmoid
and as the logit); the correlation of logit(ImageNet top-1) with logit(each task's metric) and with the logit
average, Pearson's r and Spearman's rho, each with a 95% percentile bootstrap interval over the networks (10,000
resamples, seeded; "too few networks" below 3), beside the paper's r (0.99 fixed features, 0.96 fine-tuned, none
from scratch); each transfer's chosen hyper-parameters (l2, lr, weight_decay, from its metrics); and a figure of
ImageNet top-1 against each task and the logit average on logit scales, a labelled point per network and the
least-squares line. When the report holds a finetune_search and a scratch_search experiment over the same networks
(the union grid kornblith2019), a table per task gives each network's fine-tuned minus from-scratch accuracy and
the mean over the networks.
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
import matplotlib.ticker as ticker  # noqa: E402
import numpy as np  # noqa: E402
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
    """The experiments of several plans, one per name: points with the same label set, size and network are one
    point, whose units are all of theirs."""
    combined = {}
    for experiment in experiments:
        into = combined.setdefault(experiment["name"], {**experiment, "points": [], "tasks": []})
        into["tasks"] += [t for t in experiment["tasks"] if t not in into["tasks"]]
        for point in experiment["points"]:
            same = next((p for p in into["points"] if _point_key(p) == _point_key(point)), None)
            if same is None:
                into["points"].append({**point, "pretrainings": list(point["pretrainings"]),
                                       "finetunings": {t: list(u) for t, u in point["finetunings"].items()}})  # fmt: skip
                continue
            same["pretrainings"] += [u for u in point["pretrainings"] if u not in same["pretrainings"]]
            for task, units in point["finetunings"].items():
                same["finetunings"].setdefault(task, [])
                same["finetunings"][task] += [u for u in units if u not in same["finetunings"][task]]
    return list(combined.values())


def _point_key(point: dict) -> tuple:
    """What makes two plans' points one: label set, size and network (plans before models had none)."""
    return point["label_set"], point["images_per_class"], point["budget"], point.get("model")


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
            value = row["value"] if series.key is None else _metrics(row).get(series.key)
            if value is None:
                missing += 1
            else:
                values.append(100 * value)
    return {"values": values, "failed": failed, "missing": missing, **summary(values)}


def _metrics(row: dict) -> dict:
    return json.loads(row["metrics"] or "{}")


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
        if experiment.get("protocols", {}).get(task, TASKS[task].protocol) == "probe":
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
    figure, axes = _panels(len(series))
    x, ticks, scale = _axis(experiment, rows, experiment["figure"]["x"])
    points, findings = experiment["points"], experiment["findings"]
    for index, (one, axis) in enumerate(zip(series, axes)):
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
    return _png(figure, experiment["figure"]["title"])


def _panels(count: int) -> tuple[plt.Figure, list]:
    """A figure of ``count`` panels, PANEL_PX each, up to PANEL_COLUMNS a row (the rest of the last row blank)."""
    columns = min(count, PANEL_COLUMNS)
    lines = math.ceil(count / columns)
    figure, axes = plt.subplots(lines, columns, squeeze=False,
                                figsize=(PANEL_PX[0] * columns / DPI, PANEL_PX[1] * lines / DPI), dpi=DPI)  # fmt: skip
    for axis in list(axes.flat)[count:]:
        axis.axis("off")
    return figure, list(axes.flat)[:count]


def _png(figure: plt.Figure, title: str) -> bytes:
    figure.suptitle(title, fontsize=10)
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


# Kornblith et al. (2019): one point per network ------------------------------------------------------------

TOP1_AXIS = "imagenet_top1"  # grid.figure.x of an experiment whose points are pretrained networks
KORNBLITH = "Kornblith, Shlens, Le (2019)"
# Its headline (../shared/PAPERS.md, Paper 2): r over the 12 datasets' logit-averaged accuracy; none from scratch.
KORNBLITH_R = {"fixed_features": 0.99, "finetune_search": 0.96}
CLIP, RESAMPLES, BOOTSTRAP_SEED = 1e-4, 10_000, 0  # accuracies clipped to [CLIP, 1 - CLIP] before the logit
HYPER_PARAMETERS = ("l2", "lr", "weight_decay")  # the chosen values a transfer's metrics may hold

Section = tuple[str | None, str | None, list[str], list[list[str]]]  # heading, caption, table header and body


@dataclass(frozen=True)
class Network:
    """One point of an imagenet_top1 experiment: the network, its ImageNet top-1 and each task's metric
    (``measure``'s, percent)."""

    name: str
    point: dict
    top1: dict
    source: str  # where the top-1 comes from (its pretraining rows' imagenet_top1_source), or ""
    tasks: dict[str, dict]


def networks(experiment: dict, rows: dict) -> list[Network]:
    found = []
    for point in experiment["points"]:
        done = [rows[u] for u in point["pretrainings"] if rows.get(u, {}).get("status") == "ok"]
        sources = ", ".join(sorted({str(s) for s in (_metrics(r).get("imagenet_top1_source") for r in done) if s}))
        tasks = {t: measure(point, Series(t), rows) for t in experiment["tasks"]}
        name = point.get("model") or point_name(point)
        found.append(Network(name, point, measure(point, Series(PRETRAIN), rows), sources, tasks))
    return found


def protocol_of(experiment: dict) -> str | None:
    """The protocol every task of the experiment transfers by (None: several, or a plan that does not say)."""
    protocols = set(experiment.get("protocols", {}).values())
    return protocols.pop() if len(protocols) == 1 else None


def logit(fraction):
    """log(p / (1 - p)) of p clipped to [CLIP, 1 - CLIP]; numbers or numpy arrays."""
    clipped = np.clip(fraction, CLIP, 1 - CLIP)
    return np.log(clipped / (1 - clipped))


def sigmoid(value):
    return 1 / (1 + np.exp(-value))


def averaged_tasks(experiment: dict, nets: list[Network]) -> list[str]:
    """The tasks of the logit average: those every network with a finished transfer has a value of."""
    ran = [n for n in nets if any(m["n"] for m in n.tasks.values())]
    return [t for t in experiment["tasks"] if ran and all(n.tasks[t]["n"] for n in ran)]


def logit_average(net: Network, tasks: list[str]) -> float | None:
    """The mean over ``tasks`` of logit(the network's accuracy); None without every one of them."""
    if not tasks or not all(net.tasks[t]["n"] for t in tasks):
        return None
    return float(np.mean([logit(net.tasks[t]["mean"] / 100) for t in tasks]))


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of each row of ``a`` with the same row of ``b``."""
    a, b = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def correlations(x, y, seed: int = BOOTSTRAP_SEED, resamples: int = RESAMPLES) -> dict:
    """Pearson's r and Spearman's rho of y with x, each with a 95% percentile bootstrap interval: the pairs
    resampled with replacement, resamples in which either side is constant skipped. None below 3 pairs; an estimate
    None when a side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3:
        return {"n": len(x), "pearson": None, "spearman": None}
    picks = np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))
    xs, ys = x[picks], y[picks]
    keep = (np.ptp(xs, axis=1) > 0) & (np.ptp(ys, axis=1) > 0)
    found = {"n": len(x), "resamples": int(keep.sum())}
    if not (np.ptp(x) and np.ptp(y)):
        return found | {"pearson": {"estimate": None}, "spearman": {"estimate": None}}
    for name, transform in (("pearson", lambda a: a), ("spearman", lambda a: stats.rankdata(a, axis=1))):
        estimate = _pearson(transform(x[None]), transform(y[None]))[0]
        low, high = np.percentile(_pearson(transform(xs[keep]), transform(ys[keep])), [2.5, 97.5])
        found[name] = {"estimate": float(estimate), "low": float(low), "high": float(high)}
    return found


def networks_table(experiment: dict, nets: list[Network], averaged: list[str]) -> Section:
    """A row per network: its ImageNet top-1 (and where it comes from), each task's metric, the logit average."""
    left_out = [t for t in experiment["tasks"] if t not in averaged]
    caption = ("Percent: mean ± std over the network's replicates (n) and the 95% interval of the mean. ImageNet "
               "top-1: the network's own validation top-1 (where it comes from, when its rows say). "
               "Logit-averaged transfer accuracy: the mean over the tasks every network has "
               f"({', '.join(averaged) or 'none yet'}) of logit(accuracy), accuracies clipped to [{CLIP:g}, "
               f"1 − {CLIP:g}], shown through the sigmoid as a percentage and as the logit"
               + (f"; left out: {', '.join(left_out)} (some network has no value)." if left_out else "."))  # fmt: skip
    header = ["network", "ImageNet top-1", *(Series(t).title for t in experiment["tasks"]),
              "logit-averaged transfer accuracy"]  # fmt: skip
    body = []
    for net in nets:
        average = logit_average(net, averaged)
        shown = f"{100 * sigmoid(average):.1f} (logit {average:+.3f})" if average is not None else "not measured"
        top1 = cell(net.top1) + (f" ({net.source})" if net.source else "")
        body.append([net.name, top1, *(cell(net.tasks[t]) for t in experiment["tasks"]), shown])
    return None, caption, header, body


def _correlation_cells(pairs: list[tuple[float, float]]) -> list[str]:
    if len(pairs) < 3:
        return ["too few networks"] * 2
    found = correlations(*zip(*pairs))
    return [f"{c['estimate']:.3f} [{c['low']:.3f}, {c['high']:.3f}]" if c["estimate"] is not None
            else "undefined (one side is the same for every network)" for c in (found["pearson"], found["spearman"])]


def correlation_table(experiment: dict, nets: list[Network], averaged: list[str]) -> Section:
    """ImageNet top-1 against the logit average and each task's metric, both as logits: Pearson and Spearman."""
    protocol = protocol_of(experiment)
    paper = f"{KORNBLITH_R[protocol]:.2f}" if protocol in KORNBLITH_R else f"none for {protocol or 'mixed protocols'}"
    top = [n for n in nets if n.top1["n"]]
    average = [(logit(n.top1["mean"] / 100), logit_average(n, averaged)) for n in top]
    lines = [("logit-averaged transfer accuracy", [p for p in average if p[1] is not None], paper)]
    lines += [(Series(t).title, [(logit(n.top1["mean"] / 100), logit(n.tasks[t]["mean"] / 100)) for n in top
                                 if n.tasks[t]["n"]], "not confirmed") for t in experiment["tasks"]]  # fmt: skip
    caption = (f"Over the networks: logit(transfer accuracy) against logit(ImageNet top-1), as {KORNBLITH}'s figures "
               "(logit scales; Spearman's ρ is the same either way). 95% intervals: percentile bootstrap of the "
               f"networks resampled with replacement ({RESAMPLES:,} resamples, numpy Generator seed {BOOTSTRAP_SEED}; "
               "resamples with a constant side skipped). Fewer than 3 networks: too few networks. The paper's r "
               "(../shared/PAPERS.md): 0.99 with fixed features (fixed_features), 0.96 fine-tuned (finetune_search), "
               "over its 12 datasets' logit-averaged accuracy; none from random initialisation "
               "(scratch_search).")  # fmt: skip
    header = ["ImageNet top-1 against", "networks", "Pearson r [95% bootstrap]", f"{KORNBLITH}: r",
              "Spearman ρ [95% bootstrap]"]  # fmt: skip
    body = []
    for what, pairs, said in lines:
        pearson, spearman = _correlation_cells(pairs)
        body.append([what, str(len(pairs)), pearson, said, spearman])
    return "Correlation with ImageNet top-1", caption, header, body


def chosen(units: list[str], rows: dict) -> str:
    """The hyper-parameters each finished unit chose (its metrics' HYPER_PARAMETERS), one entry a seed."""
    found = []
    for row in (rows[u] for u in units if rows.get(u, {}).get("status") == "ok"):
        metrics = _metrics(row)
        found.append(", ".join(f"{k}={metrics[k]:.3g}" for k in HYPER_PARAMETERS if metrics.get(k) is not None)
                     or "none recorded")  # fmt: skip
    return "; ".join(found) or "no finished transfer"


def chosen_table(experiment: dict, nets: list[Network], rows: dict) -> Section:
    caption = (f"Chosen on validation, as the transfer rows' metrics record them ({', '.join(HYPER_PARAMETERS)}, "
               "whichever are present); one entry per fine-tuning seed.")  # fmt: skip
    header = ["network", *experiment["tasks"]]
    body = [[n.name, *(chosen(n.point["finetunings"].get(t, []), rows) for t in experiment["tasks"])] for n in nets]
    return "Chosen hyper-parameters", caption, header, body


def networks_report(experiment: dict, rows: dict) -> tuple[bytes, list[Section]]:
    """An imagenet_top1 experiment's figure and tables: the networks, the correlations, the chosen values."""
    nets = networks(experiment, rows)
    averaged = averaged_tasks(experiment, nets)
    sections = [networks_table(experiment, nets, averaged), correlation_table(experiment, nets, averaged),
                chosen_table(experiment, nets, rows)]  # fmt: skip
    return draw_networks(experiment, nets, averaged), sections


def draw_networks(experiment: dict, nets: list[Network], averaged: list[str]) -> bytes:
    """A panel per task and one for the logit average: ImageNet top-1 against it, a point per network."""
    top = [n for n in nets if n.top1["n"]]
    panels = [(Series(t).title, [(n.name, n.top1["mean"] / 100, n.tasks[t]["mean"] / 100) for n in top
                                 if n.tasks[t]["n"]]) for t in experiment["tasks"]]  # fmt: skip
    average = [(n.name, n.top1["mean"] / 100, logit_average(n, averaged)) for n in top]
    panels.append((f"logit-averaged transfer accuracy ({len(averaged)} tasks)",
                   [(name, x, sigmoid(a)) for name, x, a in average if a is not None]))  # fmt: skip
    figure, axes = _panels(len(panels))
    for axis, (title, points) in zip(axes, panels):
        _scatter(axis, title, points)
    return _png(figure, experiment["figure"]["title"])


def _scatter(axis, title: str, points: list[tuple[str, float, float]]) -> None:
    """(name, ImageNet top-1, accuracy) as fractions on logit scales, each labelled, and the least-squares line of
    the logits."""
    axis.set_title(title, fontsize=9)
    if not points:
        axis.annotate("not run", (0.5, 0.5), xycoords="axes fraction", ha="center", fontsize=8, color="#a00000")
        return
    names, x, y = zip(*points)
    x, y = np.clip(x, CLIP, 1 - CLIP), np.clip(y, CLIP, 1 - CLIP)
    axis.scatter(x, y, s=16, color="#4878a8", zorder=3)
    for name, a, b in zip(names, x, y):
        axis.annotate(name, (a, b), xytext=(3, 3), textcoords="offset points", fontsize=6)
    if np.ptp(logit(x)) > 0:
        slope, intercept = np.polyfit(logit(x), logit(y), 1)
        line = np.linspace(logit(x).min(), logit(x).max(), 50)
        axis.plot(sigmoid(line), sigmoid(slope * line + intercept), color="#d62728", linewidth=1,
                  label="least squares (logits)")  # fmt: skip
        axis.legend(fontsize=6, loc="best")
    axis.set_xscale("logit")
    axis.set_yscale("logit")
    for side in (axis.xaxis, axis.yaxis):  # percent, as the tables
        side.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{100 * value:.3g}"))
        side.set_minor_formatter(ticker.NullFormatter())
    axis.margins(0.12)
    axis.set_xlabel("ImageNet top-1, percent (logit scale)", fontsize=8)
    axis.set_ylabel("percent (logit scale)", fontsize=8)
    axis.tick_params(labelsize=7)


def scratch_sections(finetuned: dict, scratch: dict, rows: dict) -> list[Section]:
    """A table per task both experiments share: each network's fine-tuned minus from-scratch accuracy."""
    by_name = {n.name: n for n in networks(scratch, rows)}
    shared = [n for n in networks(finetuned, rows) if n.name in by_name]
    if not shared:
        return []
    caption = (f"Points: {finetuned['name']} ({protocol_of(finetuned)}) minus {scratch['name']} "
               f"({protocol_of(scratch)}), each the mean over its seeds; the mean over the networks with both, "
               "± std (n) and its 95% interval.")  # fmt: skip
    header = ["network", "fine-tuned", "from scratch", "fine-tuned − from scratch"]
    sections = []
    for task in (t for t in finetuned["tasks"] if t in scratch["tasks"]):
        pairs = [(n.name, n.tasks[task], by_name[n.name].tasks[task]) for n in shared]
        gaps = [a["mean"] - b["mean"] for _, a, b in pairs if a["n"] and b["n"]]
        body = [[name, cell(a), cell(b), f"{a['mean'] - b['mean']:+.1f}" if a["n"] and b["n"] else "n/a"]
                for name, a, b in pairs]  # fmt: skip
        mean = cell({**summary(gaps), "failed": 0, "missing": 0}) if gaps else "n/a"
        body.append(["mean over networks", "", "", mean])
        sections.append((Series(task).title, caption if not sections else None, header, body))
    return sections


def scratch_comparisons(experiments: list[dict]) -> list[tuple[dict, dict]]:
    """(fine-tuned, from scratch): every imagenet_top1 experiment of protocol finetune_search with every one of
    scratch_search (the union grid kornblith2019 runs both)."""
    top1 = [e for e in experiments if e["figure"]["x"] == TOP1_AXIS]
    return [(f, s) for f in top1 if protocol_of(f) == "finetune_search"
            for s in top1 if protocol_of(s) == "scratch_search"]  # fmt: skip


def add_section(markdown: list[str], body: list[str], heading, caption, header, table) -> None:
    """Appends a table, under its heading and caption where it has them, to the Markdown and HTML pages."""
    if heading:
        markdown += [f"### {heading}", ""]
        body.append(f"<h3>{html.escape(heading)}</h3>")
    if caption:
        markdown += [caption, ""]
        body.append(f"<p>{html.escape(caption)}</p>")
    markdown += [markdown_table(header, table), ""]
    body.append(html_table(header, table))


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
        if experiment["figure"]["x"] == TOP1_AXIS:
            files[f"{name}.png"], sections = networks_report(experiment, rows)
        else:
            files[f"{name}.png"], sections = draw(experiment, rows), [(None, None, *tables(experiment, rows))]
        counts = unit_counts(experiment, rows)
        markdown += [f"## {name}: {experiment['figure']['title']}", "", counts, "", f"![{name}]({name}.png)", ""]
        image = base64.b64encode(files[f"{name}.png"]).decode()
        body += [f"<h2 id='{html.escape(name)}'>{html.escape(name)}: {html.escape(experiment['figure']['title'])}</h2>",
                 f"<p>{html.escape(counts)}</p>", f"<img alt='{html.escape(name)}' src='data:image/png;base64,{image}'>"]  # fmt: skip
        if judged:
            sections.append(("The paper's findings", None, *findings_table(judged, experiment)))
        for section in sections:
            add_section(markdown, body, *section)
    for finetuned, scratch in scratch_comparisons(experiments):
        sections = scratch_sections(finetuned, scratch, rows)
        title = f"Fine-tuned against from scratch: {finetuned['name']} − {scratch['name']}"
        markdown += [f"## {title}", ""] if sections else []
        body += [f"<h2>{html.escape(title)}</h2>"] if sections else []
        for section in sections:
            add_section(markdown, body, *section)
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

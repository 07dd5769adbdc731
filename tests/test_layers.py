"""The layers: each package imports only from the layers below it, and the driver (--help, config loading,
dry runs) imports no training code."""

import ast
import importlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import synthetic

ROOT = Path(__file__).resolve().parents[1]
# Bottom to top; packages on one level are independent of each other.
LAYERS = [("formats",), ("synthetic",), ("subsets",), ("tasks", "models"), ("trainers",), ("orchestrator",)]
LEVEL = {package: level for level, packages in enumerate(LAYERS) for package in packages}
TRAINING_CODE = ("mmdet", "mmcv", "mmengine", "ray.train", "ray.tune", "trainers", "orchestrator.trial",
                 "orchestrator.worker")


def project_imports(path: Path) -> set[str]:
    """The project packages a file imports, anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(LEVEL)


@pytest.mark.parametrize("package", sorted(LEVEL))
def test_package_imports_only_from_the_layers_below(package):
    assert Path(importlib.import_module(package).__file__).parent == ROOT / package
    upward = {
        f"{path.relative_to(ROOT)} imports {other}"
        for path in (ROOT / package).rglob("*.py")
        for other in project_imports(path)
        if other != package and LEVEL[other] >= LEVEL[package]
    }
    assert not upward, sorted(upward)


def test_every_package_is_in_a_layer():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LEVEL), "add the package to LAYERS (and to the README's layer table)"


def imported_modules(*args: str) -> tuple[list[str], float]:
    """The modules ``python -X importtime -m orchestrator.run ARGS`` imports, and their total seconds."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "orchestrator.run", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = [line.split("|") for line in result.stderr.splitlines() if line.startswith("import time:")][1:]
    return [row[2].strip() for row in rows], sum(int(row[1]) for row in rows) / 1e6


@pytest.mark.parametrize("args", [["--help"], ["dry_run=true", "scale=paper"], ["dry_run=true"]])
def test_the_driver_imports_no_training_code(tmp_path, args):
    modules, seconds = imported_modules(*args, f"storage={tmp_path}")
    heavy = sorted({m for m in modules if any(m == h or m.startswith(h + ".") for h in TRAINING_CODE)})
    assert not heavy, heavy
    assert "orchestrator.config" in modules and seconds > 0


def test_the_synthetic_datasets_digest_covers_the_layer_below_and_the_generators_file(tmp_path, monkeypatch):
    """The synthetic VOC draws on formats' PASCAL synsets and VOC classes, a task's synthetic twin on its own
    file: editing any of them must name new data."""
    food101 = ROOT / "tasks" / "food101.py"
    assert synthetic.code_version(food101) != synthetic.code_version()
    for package in ("formats", "synthetic"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(synthetic, "ROOT", tmp_path)
    synthetic.code_version.cache_clear()
    before = synthetic.code_version()
    voc = tmp_path / "formats" / "voc.py"
    voc.write_text(re.sub(r'"cow": "cattle.n.01"', '"cow": "cow.n.01"', voc.read_text()))
    synthetic.code_version.cache_clear()
    assert synthetic.code_version() != before
    synthetic.code_version.cache_clear()  # the real digest for the tests that follow

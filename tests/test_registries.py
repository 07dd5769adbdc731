"""Tests driven by what is registered: every grid at every scale plans, every task reads its synthetic data,
every model builds, runs and round-trips its checkpoint, every label-set method builds its example. A new
entry is tested here without a new test."""

import pytest
import timm
import torch

import synthetic
from formats import DataFormatError
from formats.imagenet import class_list
from formats.registry import UnknownNameError
from models import create_model, load_checkpoint, normalisation, project_models, save_checkpoint
from orchestrator.config import available, experiments, grid_findings, grid_points, grid_seeds, grid_tasks, load
from orchestrator.plan import describe, make_plan
from subsets import labels
from tasks import TASKS, datasets
from tasks.metrics import IGNORED
from trainers import PROTOCOLS

# Architectures that are no file of the project's but that grids name, or that stand for timm's others.
TIMM_EXAMPLES = ["resnet18"]


def named_models() -> list[str]:
    names = set(project_models()) | set(TIMM_EXAMPLES)
    for grid in available("grid"):
        for scale in available("scale"):
            for experiment in experiments(load([f"grid={grid}", f"scale={scale}"])):
                names |= {point["model"]["name"] for point in grid_points(experiment)}
    return sorted(names)


@pytest.mark.parametrize("scale", available("scale"))
@pytest.mark.parametrize("grid", available("grid"))
def test_every_grid_plans_at_every_scale(grid, scale):
    config = load([f"grid={grid}", f"scale={scale}"])
    plan = make_plan(config)
    assert plan.pretrainings, "a grid has at least one pretraining"
    for experiment in experiments(config):  # a union's experiments share units: each is counted in its own plan
        alone = make_plan(experiment)
        per_pretraining = len(grid_tasks(experiment)) * len(grid_seeds(experiment))
        assert len(alone.finetunings) == len(alone.pretrainings) * per_pretraining
        # Every finding of the grid file picks its two points at every scale.
        for finding in grid_findings(experiment):
            assert finding["trend"] or None not in (finding["compare"], finding["against"]), finding["claim"]
    assert len({p.unit_id for p in plan.pretrainings}) == len(plan.pretrainings)
    assert len({f.unit_id for f in plan.finetunings}) == len(plan.finetunings)
    text = describe(plan, config, finished=set())
    assert f"grid {config.grid.name}: {len(plan.pretrainings)} pretrainings" in text
    for pretraining in plan.pretrainings:  # a subset's labels, or published weights of the model timm names
        if pretraining.subset is None:
            assert f"{pretraining.model['name']}.{pretraining.weights['tag']}" in timm.list_pretrained()
        else:
            assert pretraining.subset.resolve_labels(class_list("imagenet1k")).num_labels >= 1


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_reads_its_tiny_synthetic_data(name, tmp_path):
    task = TASKS[name]
    assert task.dataset in datasets() and task.protocol in PROTOCOLS and task.protocol in load([])
    root = synthetic.resolve(task.dataset, "embedded:tiny")
    task.check_layout(root)
    with pytest.raises(DataFormatError):
        task.check_layout(tmp_path)
    if task.read is None:  # detection reads through MMDetection (test_detect.py)
        return
    for split in task.splits:
        examples = task.read(root, split)
        assert examples.paths and len(examples.paths) == len(examples.targets)
        assert all((examples.root / path).is_file() for path in examples.paths)
        for target in examples.targets:
            if task.multilabel:
                assert len(target) == len(examples.classes) and set(target) <= {0.0, 1.0, IGNORED}
            else:
                assert 0 <= target < len(examples.classes)
    scores = torch.randn(len(examples.targets), len(examples.classes)).numpy()
    metrics = task.evaluate(scores, torch.as_tensor(examples.targets).numpy())
    assert 0 <= metrics[task.metric] <= 1


@pytest.mark.parametrize("name", named_models())
def test_every_model_builds_runs_and_round_trips_its_checkpoint(name, tmp_path):
    args = {"variant": "small", "width": 0.25} if name == "alexnet" else {}
    model = create_model(name, 5, args).eval()
    images = torch.randn(2, 3, 80, 80)  # the Inceptions' least input is 75 px
    assert model(images).shape == (2, 5)
    features = model.forward_head(model.forward_features(images), pre_logits=True)
    assert features.ndim == 2 and features.shape[0] == 2
    mean, std = normalisation(model)
    assert len(mean) == len(std) == 3
    model.reset_classifier(3)
    save_checkpoint(tmp_path / "model.pt", model, {"epoch": 1})
    loaded, state = load_checkpoint(tmp_path / "model.pt")
    assert state["epoch"] == 1 and state["spec"] == {"name": name, "args": args, "num_classes": 3}
    assert torch.equal(loaded.eval()(images), model(images))


@pytest.mark.parametrize("pattern", labels.LABEL_SET_METHODS.names())
def test_every_label_set_method_builds_its_example(pattern):
    method = labels.LABEL_SET_METHODS[pattern]
    built = labels.label_set(method.example, class_list("imagenet1k"))
    assert built.name == method.example and built.num_labels >= 1


@pytest.mark.parametrize(
    "registry, name, suggestion",
    [(TASKS, "sun39", "sun397"), (labels.LABEL_SET_METHODS, "random_", "random_<N>")],
)
def test_an_unknown_name_names_the_nearest(registry, name, suggestion):
    with pytest.raises(UnknownNameError, match=f"did you mean {suggestion}"):
        registry[name]

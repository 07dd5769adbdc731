"""Networks by name: the project's own (AlexNet, ``models/alexnet.py``) and every timm architecture,
through one registry, timm's.

    from models import create_model, list_models
    model = create_model("alexnet", num_classes=1000, args={"variant": "small", "width": 0.25})
    model = create_model("resnet50", num_classes=397)          # any timm architecture

A model's spec (name, args, number of classes) travels inside its checkpoint, so a checkpoint is
enough to rebuild the network. Trainers use timm's interface only: ``reset_classifier``,
``forward_features`` / ``forward_head(pre_logits=True)``, and the input normalisation of the model's
``pretrained_cfg``. A new architecture is one new file in this folder whose entrypoint carries
``@register_model`` (timm's decorator, re-exported here): it is then a model name everywhere, and the
registry-driven tests build it, run it and round-trip its checkpoint.
"""

import difflib
import functools
import importlib
import inspect
import pkgutil
from pathlib import Path

import timm
import torch
from timm.data import resolve_model_data_config
from timm.models import register_model as timm_register_model
from torch import nn

from formats.registry import UnknownNameError

_PROJECT_MODELS: list[str] = []
# Arguments timm's create_model hands every entrypoint: plumbing, not a model's own arguments.
TIMM_PLUMBING = {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"}


def register_model(entrypoint):
    """timm's ``@register_model``, and the entry is listed among the project's models."""
    timm_register_model(entrypoint)
    if entrypoint.__name__ not in _PROJECT_MODELS:
        _PROJECT_MODELS.append(entrypoint.__name__)
    return entrypoint


@functools.cache
def _import_project_models() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def project_models() -> list[str]:
    """The architectures defined in this folder."""
    _import_project_models()
    return sorted(_PROJECT_MODELS)


def list_models(pattern: str = "") -> list[str]:
    """The project's models and timm's architectures (``pattern``: timm's wildcard filter)."""
    _import_project_models()
    return sorted(set(timm.list_models(pattern or "*")))


def unknown_model(name: str) -> UnknownNameError:
    close = difflib.get_close_matches(name, list_models(), n=3, cutoff=0.6)
    return UnknownNameError(
        f"unknown model {name!r}" + (f"; did you mean {', '.join(close)}?" if close else "")
        + f" Models: the project's ({', '.join(project_models())}) and any of timm's {len(list_models())}"
        """ architectures (python -c "import timm; print(timm.list_models())")"""
    )  # fmt: skip


def create_model(name: str, num_classes: int, args: dict | None = None, device=None) -> nn.Module:
    """A freshly initialised network (no weights are downloaded) with ``num_classes`` outputs; its spec
    is kept as ``model.spec`` for its checkpoints."""
    _import_project_models()
    if not timm.is_model(name):
        raise unknown_model(name)
    with torch.device(device or "cpu"):
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, **(args or {}))
    model.spec = {"name": name, "args": dict(args or {})}
    return model


def check_model(name: str, args: dict | None = None, image_size: int | None = None) -> None:
    """Raises an error naming the problem (an unknown name, with the nearest; an argument the model does
    not take; with ``image_size``, square images of that size it cannot take) unless ``name`` with ``args`` builds
    and, given a size, runs a training step's forward pass. On the meta device: no memory, no weights."""
    _import_project_models()
    if not timm.is_model(name):
        raise unknown_model(name)
    entrypoint = timm.models.model_entrypoint(name)
    own = {p for p in inspect.signature(entrypoint).parameters} - TIMM_PLUMBING
    if name in _PROJECT_MODELS and set(args or {}) - own:
        raise ValueError(f"model {name} takes {', '.join(sorted(own))}, not {', '.join(sorted(set(args) - own))}")
    try:
        model = create_model(name, 2, args, device="meta")
    except (TypeError, ValueError) as error:
        raise ValueError(f"model {name} with args {dict(args or {})}: {error}") from None
    if image_size is None:
        return
    try:  # two images: a batch norm in training mode needs more than one value per channel
        model.train()(torch.empty(2, 3, image_size, image_size, device="meta"))
    except (RuntimeError, TypeError, ValueError, AssertionError) as error:
        raise ValueError(
            f"model {name} with args {dict(args or {})} cannot take {image_size} x {image_size} px images "
            f"(image_size): {error}"
        ) from None


def full_args(name: str, args: dict) -> dict:
    """``args`` with the defaults of the entrypoint's own arguments filled in, so that a model given an argument
    at its default and one given none are the same network (timm's own entrypoints take ``**kwargs``: as given)."""
    _import_project_models()
    parameters = inspect.signature(timm.models.model_entrypoint(name)).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY and p.name != "num_classes"}
    return {**defaults, **args}


def normalisation(model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel mean and std the model's inputs are normalised with (its pretrained_cfg)."""
    config = resolve_model_data_config(model)
    return tuple(config["mean"]), tuple(config["std"])


def save_checkpoint(path: Path, model: nn.Module, extra: dict | None = None) -> None:
    """The weights and the spec that rebuilds the model, written atomically: a half-written checkpoint
    never replaces a good one."""
    path = Path(path)
    spec = {**model.spec, "num_classes": model.num_classes}
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save({"model": model.state_dict(), "spec": spec, **(extra or {})}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[nn.Module, dict]:
    """The model and the rest of what was saved with it. Checkpoints written before models had specs
    (an ``alexnet`` entry instead) load too."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    spec = state.get("spec") or {"name": "alexnet", "args": state["alexnet"], "num_classes": state["num_classes"]}
    model = create_model(spec["name"], spec["num_classes"], spec["args"])
    model.load_state_dict(state["model"])
    return model, state

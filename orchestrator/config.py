"""Command-line overrides + orchestrator/conf -> one validated run configuration.

Grids are config files in Hydra config groups: ``grid=NAME`` picks conf/grid/NAME.yaml,
``scale=NAME`` conf/scale/NAME.yaml, and any key is overridable as ``key=value``. Keys are
strict: an unknown key is an error that names the nearest valid ones.
"""

import difflib
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from subsets.labels import check_name
from trainers.finetune import TASKS
from trainers.models import AlexNetConfig

CONF_DIR = Path(__file__).parent / "conf"
WHOLE_NUMBERS = {  # keys that must be whole numbers >= 1, by section
    "pretrain": ("epochs", "batch_size", "lr_step_epochs", "image_size"),
    "finetune": ("epochs", "batch_size", "lr_step_epochs"),
    "finetune.detection": ("iterations", "batch_size", "image_scale", "checkpoint_interval"),
}


class ConfigError(ValueError):
    pass


def available(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _keys(node, prefix="") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [k for key, value in node.items() for k in _keys(value, f"{prefix}.{key}" if prefix else key)]


def _base_keys() -> list[str]:
    with initialize_config_dir(str(CONF_DIR), version_base=None):
        return _keys(OmegaConf.to_container(compose("config"), resolve=False))


def load(overrides: list[str]) -> DictConfig:
    """The run configuration for these ``key=value`` overrides, checked."""
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("grid", "scale") and "=" in override and override.split("=", 1)[1] not in available(key):
            raise ConfigError(
                f"unknown {key} {override.split('=', 1)[1]!r}; available: {', '.join(available(key))}"
            )
    try:
        with initialize_config_dir(str(CONF_DIR), version_base=None):
            config = compose("config", overrides=overrides)
    except (ConfigCompositionException, MissingConfigException, OmegaConfBaseException) as error:
        raise ConfigError(_explain(error, overrides)) from None
    check(config)
    return config


def _explain(error: Exception, overrides: list[str]) -> str:
    message = str(error)
    known = _base_keys()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key in ("grid", "scale") or key in known or any(k.startswith(key + ".") for k in known):
            continue
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        return f"unknown key {key!r}" + (f"; did you mean {', '.join(close)}?" if close else "") + (
            " Valid keys are listed by `python -m orchestrator.run --help`."
        )
    return message


def check(config: DictConfig) -> None:
    """Values no schema catches: label sets, tasks, the network, numbers that must be positive."""
    try:
        missing = sorted(OmegaConf.missing_keys(config))
    except OmegaConfBaseException as error:
        raise ConfigError(str(error)) from None
    if missing:
        raise ConfigError(f"these keys need a value: {', '.join(missing)}")
    grid = config.grid
    for point in grid.points:
        check_name(point.label_set)
    unknown_tasks = [t for t in grid.tasks if t not in TASKS]
    if unknown_tasks:
        raise ConfigError(f"unknown task(s) {unknown_tasks}; tasks: {', '.join(TASKS)}")
    AlexNetConfig(**config.pretrain.alexnet)
    for section, keys in WHOLE_NUMBERS.items():
        for key in keys:
            value = OmegaConf.select(config, f"{section}.{key}")
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{section}.{key} must be a whole number >= 1, not {value!r}")
    if config.resources.num_workers < 1 or config.finetune.groups < 1:
        raise ConfigError("resources.num_workers and finetune.groups must be >= 1")


def run_name(config: DictConfig) -> str:
    return config.run or config.grid.name

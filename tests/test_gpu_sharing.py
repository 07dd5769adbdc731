"""Trials that use a fraction of a GPU share one (resources.gpus_per_worker < 1): the sweep runs as many at once as
the GPUs hold, and Ray places that many of their worker bundles on one GPU. This machine has no GPU, so the GPU is
declared to a real local Ray for placement only: nothing runs on it."""

import pytest
import ray
from conftest import LOCAL_RAY
from omegaconf import OmegaConf
from ray.util.placement_group import placement_group, remove_placement_group

from orchestrator.config import load
from orchestrator.run import _trials_that_fit
from orchestrator.trial import _scaling

pytestmark = pytest.mark.xdist_group(LOCAL_RAY)


@pytest.mark.timeout(120)
def test_a_quarter_of_a_gpu_per_worker_puts_four_trials_on_each_gpu():
    config = load(["grid=kornblith_finetune", "grid.tasks=[pets]", "resources.use_gpu=true",
                   "resources.gpus_per_worker=0.25"])  # fmt: skip
    assert _trials_that_fit(config, {"CPU": 16.0, "GPU": 2.0}) == 8
    assert _trials_that_fit(config, {"CPU": 3.0, "GPU": 2.0}) == 3  # the CPUs hold fewer
    bundle = _scaling({"resources": OmegaConf.to_container(config.resources)}).resources_per_worker
    assert bundle == {"CPU": 1, "GPU": 0.25}
    # a Ray of its own: not one that a stopped `ray start` (a killed test) left recorded on this machine
    ray.init(address="local", num_cpus=8, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        groups = [placement_group([bundle]) for _ in range(4)]
        ray.get([group.ready() for group in groups], timeout=60)
        fifth = placement_group([bundle])
        ready, _ = ray.wait([fifth.ready()], timeout=3)
        assert not ready  # the one GPU is taken by the four, though CPUs are free
        remove_placement_group(groups[0])
        ray.get(fifth.ready(), timeout=30)
    finally:
        ray.shutdown()

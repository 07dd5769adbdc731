import numpy as np
import pytest
from PIL import Image

from synthetic import imagenet, imagenet_extra, sun397, voc


@pytest.fixture(scope="session")
def tiny_imagenet():
    return imagenet.ensure("tiny")


@pytest.fixture(scope="session")
def tiny_imagenet_extra():
    return imagenet_extra.ensure("tiny")


@pytest.fixture(scope="session")
def tiny_voc():
    return voc.ensure("tiny")


@pytest.fixture(scope="session")
def tiny_sun397():
    return sun397.ensure("tiny")


def write_image(path, size=(20, 16), mode="RGB", fmt="JPEG", seed=0):
    """A small noise image of ``mode`` saved as ``fmt`` at ``path``, whatever its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, format=fmt)
    return path

import numpy as np
import pyarrow.fs as pafs
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


@pytest.fixture
def s3_storage(monkeypatch):
    """A bucket on a real S3 API served on loopback, and the storage URI of a folder in it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "test",
                       "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir("runs")
    yield "s3://runs/transfer"
    server.stop()

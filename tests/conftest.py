"""Fixtures shared by the tests.

The suite runs in as many pytest-xdist processes as the machine has cores (pyproject.toml's addopts). A test that
starts a local Ray is in the xdist group ``local_ray`` (its module's ``pytestmark``): those run one at a time in one
process, since two local Rays on one machine would claim the same dashboard port and share its CPUs. They are the
longest tests, so they go first: the other process runs the rest meanwhile."""

import os
import socket
import threading
import uuid

import _pytest.nodes
import numpy as np
import pyarrow.fs as pafs
import pytest
from PIL import Image

from synthetic import imagenet, imagenet_extra, sun397, voc

LOCAL_RAY = "local_ray"


def pytest_configure(config):
    # pytest-xdist 3.8 groups tests by writing the group into the test's legacy _nodeid, which pytest 9.2 no longer
    # reads (pytest-xdist#1386): the groups are then silently ignored, and two local Rays would run at once
    if config.getoption("numprocesses", None) and config.getoption("dist", "no") == "loadgroup":
        if "_nodeid" not in getattr(_pytest.nodes.Node, "__slots__", ("_nodeid",)):
            raise pytest.UsageError(
                f"pytest {pytest.__version__} ignores pytest-xdist's test groups (pytest-xdist#1386), which keep the "
                "tests that start a local Ray one at a time. Install the versions pyproject.toml pins (./setup.sh), or "
                "run the suite in one process: -n 0"
            )


def pytest_collection_modifyitems(items):
    def starts_ray(item) -> bool:
        return any(mark.args == (LOCAL_RAY,) for mark in item.iter_markers("xdist_group"))

    items.sort(key=lambda item: not starts_ray(item))  # stable: the files' order otherwise


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
def s3_endpoint(monkeypatch):
    """host:port of a real S3 API served on loopback (moto's server), with a bucket ``runs``, and the credentials
    it takes in the environment (moto keeps its buckets for the whole process)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir("runs")
    yield f"{host}:{port}"
    server.stop()


@pytest.fixture
def s3_storage(s3_endpoint, monkeypatch):
    """The storage URI of a folder of the test's own in the loopback S3 API's bucket, its endpoint given the AWS
    SDKs' way (``AWS_ENDPOINT_URL``)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://{s3_endpoint}")
    return f"s3://runs/transfer-{uuid.uuid4().hex[:8]}"


class RefusingProxy:
    """A TCP proxy on loopback in front of a server, which drops every connection while ``refusing`` is set:
    storage that is briefly unreachable."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.refusing, self._connections = target, threading.Event(), set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse(self) -> None:
        self.refusing.set()
        for connection in list(self._connections):
            connection.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                end.close()
                self._connections.discard(end)

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def flaky_s3(s3_storage, monkeypatch):
    """(storage URI, proxy): the loopback S3 API reached through a ``RefusingProxy``."""
    host, port = os.environ["AWS_ENDPOINT_URL"].removeprefix("http://").split(":")
    proxy = RefusingProxy((host, int(port)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
    yield s3_storage, proxy
    proxy.close()

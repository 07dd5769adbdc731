"""Published ImageNet weights as a pretraining: timm's pretrained tags (``resnet50.tv_in1k``), read from a local
folder of weights files, or from timm's own cache where a machine has one. Nothing is downloaded at run time; a
machine that reaches the model hub fetches them once:

    python -m models.published fetch resnet50.tv_in1k inception_v3.tf_in1k --to /data/weights
    python -m orchestrator.run grid=kornblith_fixed scale=paper published_weights=/data/weights

``<folder>/<model>.<tag>.safetensors`` holds the network's whole state dict, as timm builds it (``fetch`` writes
it), so loading is one strict ``load_state_dict``: a file of another architecture, or a truncated one, is an error
naming the file, found before any worker starts (``check_weights``).
"""

import argparse
import os
import sys
from pathlib import Path

import timm
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from models import create_model

# ImageNet validation top-1 (%) of the weights, at their own input size, as timm publishes them: results/
# results-imagenet.csv of huggingface/pytorch-image-models at commit aa4b585 (2026-08-08). A run on the real
# ImageNet measures its own (data.imagenet); elsewhere these stand in, marked as published.
PUBLISHED_TOP1 = {
    "inception_v3.tf_in1k": 77.866, "inception_v4.tf_in1k": 80.144, "inception_resnet_v2.tf_in1k": 80.434,
    "resnet50.tv_in1k": 76.156, "resnet101.tv_in1k": 77.404, "resnet152.tv_in1k": 78.330,
    "densenet121.tv_in1k": 74.750, "densenet169.tv_in1k": 75.922, "densenet201.tv_in1k": 77.284,
    "mobilenetv1_100.ra4_e3600_r224_in1k": 75.388, "mobilenetv2_100.ra_in1k": 72.910,
    "mobilenetv2_140.ra_in1k": 76.528, "nasnetalarge.tf_in1k": 82.638,
}  # fmt: skip
FETCH = "python -m models.published fetch {name} --to {folder}"


class WeightsError(ValueError):
    """Published weights that are absent, unreadable or of another network."""


def weights_name(model: str, tag: str) -> str:
    return f"{model}.{tag}"


def check_tag(model: str, tag: str) -> None:
    """The tag names weights timm publishes for the model (the list of its tags otherwise)."""
    name = weights_name(model, tag)
    if name not in timm.list_pretrained(f"{model}.*"):
        known = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{model}.*")]
        raise WeightsError(f"timm publishes no weights {name}; tags of {model}: {', '.join(known) or 'none'}")


def weights_file(folder: str | Path, model: str, tag: str) -> Path:
    return Path(folder).expanduser() / f"{weights_name(model, tag)}.safetensors"


def image_size(model: str, tag: str) -> int:
    """The input size the weights were trained at (Kornblith et al. transfer each network at its own)."""
    return timm.models.get_pretrained_cfg(weights_name(model, tag)).input_size[-1]


def check_weights(model: str, tag: str, folder: str | Path | None) -> None:
    """Raises a WeightsError naming the file and what to do unless the weights are there and fit the network: every
    tensor of its state dict, of the same shape (read from the file's header: nothing is loaded)."""
    check_tag(model, tag)
    if folder is None:
        return  # timm's cache: found (or not) where the worker loads it, with the same advice
    path = weights_file(folder, model, tag)
    if not path.is_file():
        raise WeightsError(f"no weights {path}: fetch them on a machine that reaches the model hub "
                           f"({FETCH.format(name=weights_name(model, tag), folder=folder)}) and copy the folder here")  # fmt: skip
    try:
        with safe_open(str(path), "pt") as weights:
            shapes = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file ({error}): truncated or corrupt? Fetch it "
                           f"again ({FETCH.format(name=weights_name(model, tag), folder=folder)})") from None  # fmt: skip
    expected = {key: tuple(value.shape) for key, value in create_model(model, 1000, device="meta").state_dict().items()}
    wrong = sorted(set(expected) ^ set(shapes)) or sorted(k for k in expected if expected[k] != shapes[k])
    if wrong:
        raise WeightsError(f"{path} holds weights of another network than {model} ({len(wrong)} tensors differ, such "
                           f"as {wrong[0]}): fetch {weights_name(model, tag)} into {folder} again")  # fmt: skip


def load_published(model: str, tag: str, folder: str | Path | None) -> nn.Module:
    """The network with the published weights, its spec naming them (``model.tag``), so that its checkpoints rebuild
    it with the weights' own input normalisation."""
    name = weights_name(model, tag)
    if folder is None:
        os.environ["HF_HUB_OFFLINE"] = "1"  # timm's cache or nothing: never a download at run time
        try:
            network = timm.create_model(name, pretrained=True)
        except (OSError, RuntimeError, ValueError) as error:
            raise WeightsError(f"{name} is not in timm's cache on this machine ({error}); fetch it "
                               f"({FETCH.format(name=name, folder='DIR')}) and set published_weights=DIR") from None  # fmt: skip
        network.spec = {"name": name, "args": {}}
        return network
    check_weights(model, tag, folder)
    network = create_model(name, 1000)
    network.load_state_dict(load_file(weights_file(folder, model, tag)))
    return network


def fetch(names: list[str], folder: Path) -> list[Path]:
    """Downloads each ``model.tag`` through timm and writes its state dict to ``folder`` (where the hub is reached)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        model, _, tag = name.partition(".")
        check_tag(model, tag)
        state = timm.create_model(name, pretrained=True).state_dict()
        path = weights_file(folder, model, tag)
        tmp = path.with_name(f".{path.name}.tmp")
        save_file({key: value.contiguous() for key, value in state.items()}, str(tmp))
        tmp.replace(path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.published", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetching = commands.add_parser("fetch", help="download weights through timm into a folder")
    fetching.add_argument("names", nargs="+", help="model.tag, as timm names pretrained weights")
    fetching.add_argument("--to", type=Path, required=True, help="the folder (published_weights= of a run)")
    commands.add_parser("list", help="the published top-1 this project records, by weights")
    arguments = parser.parse_args(argv)
    if arguments.command == "list":
        for name, top1 in PUBLISHED_TOP1.items():
            print(f"{name:40s} {top1:.3f}")
        return 0
    try:
        for path in fetch(arguments.names, arguments.to):
            print(f"wrote {path}")
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

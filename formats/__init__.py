"""The bottom layer: what is on disk and what it means.

Readers for every dataset layout (``imagenet``, ``voc``, ``sun397``), image decoding (``images``),
WordNet 3.0 and the first-parent rule (``wordnet``), the build-once cache of generated and derived
data (``cache``), the registries every layer above fills (``registry``), and the error every reader
raises. Nothing here imports another package of the project.
"""

from pathlib import Path

GENERATE_HINT = "generate the embedded synthetic data with `python -m synthetic generate`"


class DataFormatError(ValueError):
    """A dataset on disk is missing or not in the format its reader expects."""


def require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataFormatError(f"{what} not found: {path} is not a directory")
    return path


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DataFormatError(f"{what} not found: {path} is missing")
    return path

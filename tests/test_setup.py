"""What set-up promises: the packages, WordNet 3.0 through NLTK, mmcv's compiled ops on this
machine's torch."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from formats import wordnet

ROOT = Path(__file__).resolve().parents[1]


def test_wordnet_3_0_reads_imagenet_wnids():
    wn = wordnet.load()
    assert wn.get_version() == "3.0"
    assert str(wordnet.corpus_dir()).startswith(str(wordnet.nltk_data_dir()))
    tench = wn.synset_from_pos_and_offset("n", 1440764)  # ImageNet's n01440764
    assert tench.name() == "tench.n.01" and tench.lexname() == "noun.animal"
    assert [s.name() for s in tench.hypernym_paths()[0][:3]] == ["entity.n.01", "physical_entity.n.01", "object.n.01"]
    # index.sense, derived at set-up, answers sense keys both ways.
    assert wn.lemma_from_key("dog%1:05:00::").synset().name() == "dog.n.01"
    assert wn.lemma("dog.n.01.dog").key() == "dog%1:05:00::"
    assert len(list(wn.all_synsets("n"))) == 82115  # WordNet 3.0's noun synsets


def test_index_sense_holds_every_sense_key_as_nltk_computes_it():
    """The index.sense set-up writes from the data files, against one derived from NLTK's own parse of every
    synset: each lemma's key (satellites name their cluster's head), offset, sense number and tag count."""
    wn = wordnet.load()
    tag_counts = dict(line.rsplit(" ", 2)[::2] for line in (wordnet.corpus_dir() / "cntlist.rev").read_text().splitlines())
    expected = []
    for pos in "nvar":
        for synset in wn.all_synsets(pos):
            index_pos = "a" if synset.pos() == "s" else synset.pos()
            for lemma in synset.lemmas():
                number = wn._lemma_pos_offset_map[lemma.name().lower()][index_pos].index(synset.offset()) + 1
                expected.append(f"{lemma.key()} {synset.offset():08d} {number} {tag_counts.get(lemma.key(), 0)}\n")
    assert (wordnet.corpus_dir() / "index.sense").read_text() == "".join(sorted(expected))
    assert len(expected) == 206978  # every (lemma, synset) pair of WordNet 3.0


def test_wordnet_install_without_the_debian_files_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="apt-get install --no-install-recommends wordnet-base"):
        wordnet.install(source=tmp_path / "no-wordnet-here")


def test_mmcv_was_compiled_by_set_up_against_this_torch_with_pkg_resources_at_hand():
    """Set-up's record of the mmcv build: a build after a step that upgraded setuptools past 69 (no
    pkg_resources) fails, and one against another torch would not be this record's."""
    import mmcv.ops

    record = json.loads((Path(sys.prefix) / "mmcv-build.json").read_text())
    assert record["torch"] == torch.__version__ and record["torch_cuda"] == torch.version.cuda
    assert record["pkg_resources"] and int(record["setuptools"].split(".")[0]) < 70
    assert record["key"].startswith(f"mmcv-{importlib.metadata.version('mmcv')}-torch{torch.__version__}-")
    assert record["cuda_ops"] == torch.cuda.is_available() == (mmcv.ops.get_compiling_cuda_version() != "not available")
    assert record["seconds"] > 0 and record["source"]


def test_mmcv_ops_and_torchvision_ops_agree_on_cpu():
    import mmcv.ops
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    _, kept = mmcv.ops.nms(boxes, scores, iou_threshold=0.5)
    assert kept.tolist() == torchvision.ops.nms(boxes, scores, 0.5).tolist() == [0, 2]
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0, 0, 0, 4, 4]], dtype=torch.float32)
    expected = torchvision.ops.roi_align(features, rois, (2, 2), aligned=True)
    assert torch.allclose(mmcv.ops.roi_align(features, rois, (2, 2), 1.0, 0, "avg", True), expected)


def test_mmdet_registers_its_models():
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    assert MODELS.get("FasterRCNN") is not None


def test_setup_without_wordnet_and_without_root_says_what_to_run(tmp_path):
    """Not root, so no apt-get: set-up stops before touching anything and prints the command."""
    result = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "bash", str(ROOT / "setup.sh")],
        env={"PATH": os.environ["PATH"], "WORDNET_DIR": str(tmp_path / "missing"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "apt-get install --no-install-recommends wordnet-base" in result.stderr
    assert "then run setup.sh again" in result.stderr

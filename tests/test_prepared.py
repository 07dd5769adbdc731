"""Prepared images (formats/prepared.py) and the batches training reads from them (trainers/engine.py): built once
per node and content, the same whoever builds them, and augmented, ordered and sharded as the loaders they
replace were."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import write_image
from PIL import Image
from torchvision import transforms

from formats.prepared import SOURCE_IMAGES, prepare_images
from trainers import engine

CPU = torch.device("cpu")


@pytest.fixture
def images(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path / "data"))
    folder = tmp_path / "images"
    for n in range(10):
        write_image(folder / f"{n}.jpg", size=(30 + n, 20), seed=n)
    return folder, [f"{n}.jpg" for n in range(10)]


def batches(prepared, train, batch_size=4, seed=0, image_size=8):
    return engine.Batches([(prepared, np.arange(len(prepared.paths)))], torch.arange(len(prepared.paths)),
                          image_size=image_size, train=train, batch_size=batch_size, seed=seed, mean=(0.0,) * 3,
                          std=(1 / 255,) * 3, device=CPU)  # fmt: skip


def test_prepared_once_and_again_when_a_file_changes(images):
    folder, paths = images
    first = prepare_images(folder, paths, 9)
    with Image.open(folder / "3.jpg") as image:
        assert (first.pixels[3] == np.asarray(image.convert("RGB").resize((9, 9), Image.Resampling.BILINEAR))).all()
    built = (first.folder / "pixels.npy").stat().st_mtime_ns
    again = prepare_images(folder, paths, 9)
    assert again.folder == first.folder and (again.folder / "pixels.npy").stat().st_mtime_ns == built
    write_image(folder / "3.jpg", size=(50, 50), seed=99)
    changed = prepare_images(folder, paths, 9)
    assert changed.folder != first.folder and not (changed.pixels[3] == first.pixels[3]).all()
    assert (changed.pixels[:3] == first.pixels[:3]).all()
    with pytest.raises(KeyError, match="not among the 10 prepared images"):
        changed.rows(["missing.jpg"])


def test_building_processes_and_concurrent_builders_make_the_same_copy(images, tmp_path):
    folder, paths = images
    alone = prepare_images(folder, paths, 9)
    pixels = np.array(alone.pixels)
    subprocess.run(["rm", "-rf", str(alone.folder)], check=True)
    code = f"from formats.prepared import prepare_images; print(prepare_images({str(folder)!r}, {paths!r}, 9, workers=2).folder)"
    builders = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    folders = {builder.communicate()[0].strip() for builder in builders}
    assert all(builder.returncode == 0 for builder in builders)
    assert folders == {str(alone.folder)} and (np.load(alone.folder / "pixels.npy") == pixels).all()


def test_building_processes_end_in_a_process_whose_sigterm_handler_does_not_stop_it(images):
    """A Ray worker's SIGTERM handler, inherited by the processes it forks, does not stop them: a pool ended by
    terminating its processes waited for ever (a grid point's group hung preparing its second task)."""
    folder, paths = images
    code = ("import signal; from formats.prepared import prepare_images; "
            "signal.signal(signal.SIGTERM, lambda *_: None); "
            f"[prepare_images({str(folder)!r}, {paths!r}, size, workers=2) for size in range(5, 15)]; print('built')")
    built = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)  # SIGKILL after
    assert built.returncode == 0 and built.stdout.strip() == "built", built.stderr[-2000:]


def test_training_batches_cover_every_item_once_per_epoch_in_a_new_seeded_order(images):
    prepared = prepare_images(*images, 9)
    data = batches(prepared, train=True)
    orders = []
    for epoch in (0, 1):
        data.set_epoch(epoch)
        epoch_targets = torch.cat([targets for _, targets in data])
        assert len(epoch_targets) == 8 and len(set(epoch_targets.tolist())) == 8  # 10 items, the partial batch dropped
        orders.append(epoch_targets.tolist())
    assert orders[0] != orders[1]
    data.set_epoch(1)
    assert torch.cat([targets for _, targets in batches(prepared, train=True)]).tolist() != orders[1]
    assert [t.tolist() for _, t in data] == [t.tolist() for _, t in data]  # the same epoch, the same batches


def test_training_batches_are_sharded_over_workers_like_distributed_sampler(images, monkeypatch):
    prepared = prepare_images(*images, 9)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(engine, "world", lambda rank=rank: (rank, 2))
        shards.append(torch.cat([targets for _, targets in batches(prepared, train=True, batch_size=2)]).tolist())
    assert len(shards[0]) == len(shards[1]) == 4 and not set(shards[0]) & set(shards[1])


def test_evaluation_batches_are_every_image_in_order_resized_whole(images):
    prepared = prepare_images(*images, 9)
    found = list(batches(prepared, train=False, image_size=9))
    assert torch.cat([targets for _, targets in found]).tolist() == list(range(10))
    pixels = torch.cat([images for images, _ in found])
    assert torch.allclose(pixels, torch.from_numpy(np.array(prepared.pixels)).permute(0, 3, 1, 2).float())


def test_the_centre_view_is_torchvisions_resize_and_centre_crop(tmp_path, monkeypatch):
    """Kornblith et al.'s and timm's evaluation view, against torchvision's own transforms on the same image."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path / "data"))
    smooth = np.asarray(Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 20, 3), np.uint8)).resize(
        (150, 90), Image.Resampling.BICUBIC))  # fmt: skip
    Image.fromarray(smooth).save(tmp_path / "wide.png")
    for size, crop_pct, side in ((36, 1.0, 36), (32, 0.875, 37)):
        prepared = prepare_images(tmp_path, ["wide.png"], size, centre_crop_pct=crop_pct)
        with Image.open(tmp_path / "wide.png") as image:
            view = transforms.Compose([transforms.Resize(side, transforms.InterpolationMode.BICUBIC),
                                       transforms.CenterCrop(size)])(image.convert("RGB"))  # fmt: skip
        assert np.abs(prepared.pixels[0].astype(int) - np.asarray(view).astype(int)).mean() < 2
    with pytest.raises(ValueError, match=r"centre_crop_pct must be in \(0, 1\]"):
        prepare_images(tmp_path, ["wide.png"], 36, centre_crop_pct=1.5)


def test_evaluation_with_crop_pct_reads_the_centre_and_training_the_whole_image(tmp_path, monkeypatch):
    """Three stripes, red | green | blue: the centred view (fixed features at crop_pct 1; after fine-tuning 0.875)
    sees only green; training crops draw from the whole image, and the Huh recipe's evaluation reads it whole."""
    monkeypatch.setenv("TRANSFER_DATA_DIR", str(tmp_path / "data"))
    stripes = np.zeros((32, 96, 3), np.uint8)
    for channel in range(3):
        stripes[:, 32 * channel : 32 * (channel + 1), channel] = 255
    Image.fromarray(stripes).save(tmp_path / "stripes.png")
    examples = SimpleNamespace(root=tmp_path, paths=["stripes.png"], crops=None, targets=[0])

    def read(train, crop_pct):
        return engine.example_batches(examples, 8, train, 1, 0, (0.0,) * 3, (1 / 255,) * 3, CPU, 0, crop_pct=crop_pct)

    for crop_pct in (1.0, 0.875):
        data = read(False, crop_pct)
        assert data.pixels[0].shape[1:3] == (8, 8)  # prepared as the view itself: nothing left to crop
        [(image, _)] = list(data)
        assert image.shape == (1, 3, 8, 8)
        red, green, blue = image[0].mean(dim=(1, 2)).tolist()
        assert green > 200 and red < 40 and blue < 40
    for train in (True, False):
        whole = read(train, None if not train else 0.875).pixels[0][0]
        assert whole[:, 0, 0].min() > 200 and whole[:, -1, 2].min() > 200  # red at the left, blue at the right


def test_random_resized_crops_are_crops_and_half_are_flipped():
    left_dark = torch.zeros(400, 3, 16, 16)
    left_dark[..., 8:] = 200.0
    crops = engine.random_resized_crops(left_dark, 8, torch.Generator().manual_seed(0))
    assert crops.shape == (400, 3, 8, 8) and crops.min() >= 0 and crops.max() <= 200.001
    dark_on_left = (crops[..., 0] < crops[..., -1]).all(dim=(1, 2))
    dark_on_right = (crops[..., 0] > crops[..., -1]).all(dim=(1, 2))
    assert 150 < dark_on_left.sum() < 250 and 150 < dark_on_right.sum() < 250  # crops that straddle the edge
    plain = torch.full((5, 3, 16, 16), 77.0)
    assert torch.allclose(engine.random_resized_crops(plain, 8, torch.Generator().manual_seed(1)), torch.tensor(77.0))


def test_the_command_prepares_a_pretraining_source_ahead_of_a_run(tiny_imagenet, tmp_path, monkeypatch):
    command = [sys.executable, "-m", "formats.prepared", "imagenet", str(tiny_imagenet), "--image-size", "32"]
    environment = {**os.environ, "TRANSFER_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    folder, paths = SOURCE_IMAGES["imagenet"](tiny_imagenet)
    monkeypatch.setenv("TRANSFER_DATA_DIR", environment["TRANSFER_DATA_DIR"])
    prepared = prepare_images(folder, paths, 37)  # what a pretraining of 32 px asks for: the command's copy
    assert f"{len(paths)} images (0 unreadable) in {prepared.folder}" in done.stdout
    missing = subprocess.run([*command[:4], str(tmp_path / "nowhere"), *command[5:]], env=environment,
                             capture_output=True, text=True)  # fmt: skip
    assert missing.returncode == 1 and "error: ImageNet root" in missing.stderr and "Traceback" not in missing.stderr

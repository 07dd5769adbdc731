"""What every Ray Train worker of a trial's group runs (orchestrator.trial): for each of its grid points, the
pretraining (unless its network is published already), then its transfers. Rank 0 publishes the networks and writes
the rows."""

import tempfile
import time
from pathlib import Path

import pyarrow.fs as pafs
import torch
import torch.distributed as dist
from ray.train import Checkpoint

from models import save_checkpoint
from orchestrator.store import Store, filesystem_of, join, write_whole
from trainers import engine, pretrain, transfer


def run_points(config: dict) -> None:
    """``config``: the trial's results store and its points, each a pretraining stage (``pretraining``, None where its
    network is published) and the fine-tuning group's share of its transfers (orchestrator.trial._fit_group)."""
    store = Store(config["results"])
    rank, _ = engine.world()
    for point in config["points"]:
        if point["pretraining"] is not None:
            _pretrain_and_publish(point["pretraining"], point["model"], store, rank)
        # A restarted group walks its points again from the first: what ended before has its row (written before the
        # checkpoint that every worker reports after it, so every worker sees it)
        units = [u for u in point["finetuning"]["units"]
                 if store.finished_row(point["rows"][u["unit_id"]]["kind"], u["unit_id"]) is None]  # fmt: skip
        if not units:
            continue

        def finished(unit_id: str, outcome: dict, rows=point["rows"]) -> None:
            if rank == 0:
                row = rows[unit_id]
                store.write({**row, "status": "ok", "metric": f"{row['task']}_{outcome['metric']}",
                             "value": outcome["value"], "metrics": outcome, "images_per_s": outcome["images_per_s"],
                             "train_images": outcome["train_images"], "wall_time_s": outcome["wall_time_s"]})  # fmt: skip

        transfer.run({**point["finetuning"], "units": units, "pretrained": _checkpoint(point["model"])}, finished)


def _pretrain_and_publish(stage: dict, model: str, store: Store, rank: int) -> None:
    started = time.perf_counter()
    filesystem, folder = filesystem_of(model)
    published = join(folder, pretrain.MODEL_FILE)
    if filesystem.get_file_info(published).type == pafs.FileType.File:  # a restarted group: the row may be missing
        with _checkpoint(model).as_directory() as directory:
            state = torch.load(Path(directory) / pretrain.MODEL_FILE, map_location="cpu", weights_only=True)
        history = state["history"]
    else:
        network, history = (pretrain.published if "published" in stage["loop"] else pretrain.run)(stage["loop"])
        if rank == 0:
            with tempfile.TemporaryDirectory() as scratch:
                local = Path(scratch) / pretrain.MODEL_FILE
                save_checkpoint(local, network, {"pretrain": stage["loop"], "history": history})
                filesystem.create_dir(folder, recursive=True)
                write_whole(filesystem, published, local.read_bytes())
        if dist.is_initialized():  # the other ranks read the network once rank 0 has published it
            dist.barrier()
    if rank == 0 and store.finished_row("pretrain", stage["row"]["unit_id"]) is None:
        final = history[-1]
        rates = [h["images_per_s"] for h in history if h["images_per_s"] is not None]  # none: published, not measured
        metrics = {"final": final, "history": history}
        if "imagenet_top1_source" in final:  # published weights: where their top-1 comes from
            metrics["imagenet_top1_source"] = final["imagenet_top1_source"]
        store.write({**stage["row"], "status": "ok", "value": final["val_top1"], "metrics": metrics,
                     "images_per_s": sum(rates) / len(rates) if rates else None,
                     "wall_time_s": time.perf_counter() - started})  # fmt: skip


def _checkpoint(uri: str) -> Checkpoint:
    filesystem, path = filesystem_of(uri)
    return Checkpoint(path, filesystem=filesystem)

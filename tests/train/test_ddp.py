"""DistributedDataParallel on CPU: two gloo processes (torch.multiprocessing, the environment
torchrun would set) train the tiny run; rank 0 writes the run folder; the result matches one process
up to noise (batch-norm statistics are per rank; gradients are averaged)."""

from __future__ import annotations

import csv
import os
import socket

import pytest
import torch

from aucues.train.config import resolve_config
from aucues.train.trainer import train


def _cfg(data, out):
    return resolve_config(None, dict(data=str(data), dataset="synthetic", backbone="resnet18", image_size=40,
                                     epochs=2, batch_size=8, lr=0.01, num_workers=0, seed=0, out=str(out)))


def _worker(rank, world, port, data, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    train(_cfg(data, out), progress=False)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _params(path):
    state = torch.load(path, weights_only=True)["state_dict"]
    return {k: v.float() for k, v in state.items() if "running" not in k and "num_batches" not in k}


def test_two_gloo_processes_match_one(tmp_path):
    import torch.multiprocessing as mp

    from aucues.synth import synthesize

    data = tmp_path / "synth"
    synthesize(data, per_class=6, seed=0, image_size=48, progress=False)
    torch.manual_seed(0)
    mp.spawn(_worker, args=(2, _free_port(), data, tmp_path / "ddp"), nprocs=2, join=True)
    single = train(_cfg(data, tmp_path / "one"), progress=False)

    ddp_rows = list(csv.DictReader(open(tmp_path / "ddp" / "metrics.csv")))
    assert [int(r["epoch"]) for r in ddp_rows] == [1, 2]
    assert (tmp_path / "ddp" / "best.pt").exists() and (tmp_path / "ddp" / "config.yaml").exists()
    # the same global batches (DistributedSampler split of the same permutation) and averaged
    # gradients: the per-epoch training loss matches one process closely. Not exactly: each rank's
    # BatchNorm normalises its 4 images with their own statistics, one process all 8 (measured 3.3-3.7 %
    # on this tiny run with the AU term, lambda 9); the weights below are the tighter check.
    for d, s in zip(ddp_rows, single.history):
        assert float(d["train_loss"]) == pytest.approx(s["train_loss"], rel=0.06)
    a, b = _params(tmp_path / "ddp" / "last.pt"), _params(single.last_checkpoint)
    diff = sum(((a[k] - b[k]) ** 2).sum() for k in a).sqrt()
    norm = sum((b[k] ** 2).sum() for k in b).sqrt()
    assert float(diff / norm) < 0.05, float(diff / norm)  # measured ~0.014

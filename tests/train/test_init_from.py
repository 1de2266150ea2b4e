"""`aucues train --init MODEL.pt`: fine-tuning starts from any aucues checkpoint, the imported fer
model included (its architecture, weights and grayscale box preprocessing), with the AU loss on."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from tests.conftest import one_error_line


def test_fine_tune_the_fer_model_with_the_au_loss(fer_checkpoint, tiny_synth, tmp_path):
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.config import resolve_config
    from aucues.train.trainer import train

    out = tmp_path / "ft"
    # backbone/image_size given here are replaced by the checkpoint's; min_lr keeps the step tiny so
    # the weights stay next to where they started
    cfg = resolve_config(None, dict(data=str(tiny_synth), dataset="synthetic", init=str(fer_checkpoint),
                                    backbone="resnet18", image_size=96, epochs=1, batch_size=8, num_workers=0,
                                    out=str(out), lr=1e-9, min_lr=1e-9, au_loss=True))
    run = train(cfg, progress=False)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["backbone"] == "mini_xception" and saved["image_size"] == 64 and saved["init"] == str(fer_checkpoint)
    row = next(csv.DictReader(open(out / "metrics.csv")))
    assert float(row["train_align"]) > 0 and float(row["train_ce"]) > 0  # the AU loss was on
    model, info = load_checkpoint(run.last_checkpoint)
    start, _ = load_checkpoint(fer_checkpoint)
    assert (model.preprocess.channels, model.preprocess.crop, model.preprocess.image_size) == (1, "box", 64)
    assert model.config.backbone == "mini_xception"
    a, b = model.state_dict(), start.state_dict()
    # started from the imported weights: convolutions moved by at most a few lr-sized steps
    for k in ("stem.conv1.weight", "blocks.3.sep2.pointwise.weight", "head.weight"):
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    # not a copy: BatchNorm statistics were updated by the training batches
    assert not torch.equal(a["stem.bn1.running_mean"], b["stem.bn1.running_mean"])


def test_init_bad_checkpoint_is_one_line(cli, tiny_synth, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    code, out = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--init", bad, "--out",
                    tmp_path / "r", "--epochs", "1", "--quiet")
    assert code == 1 and "bad.pt" in one_error_line(out), out

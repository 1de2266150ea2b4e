"""The trainer on a tiny synthetic set: a two-epoch run lowers the loss and writes its run folder;
a run stopped after epoch 1 and resumed reproduces the uninterrupted run exactly."""

from __future__ import annotations

import csv

import pytest
import torch
import yaml

from aucues.errors import AucuesError
from aucues.train.config import resolve_config
from aucues.train.run_folder import METRIC_COLUMNS
from aucues.train.trainer import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=8, seed=0, image_size=64, progress=False)
    return root


def tiny(synth, out, **over):
    base = dict(data=str(synth), dataset="synthetic", backbone="resnet18", image_size=48, epochs=2,
                batch_size=8, lr=0.01, num_workers=0, seed=0, out=str(out))
    return resolve_config(None, {**base, **over})


@pytest.fixture(scope="module")
def run(synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    return train(tiny(synth, out), progress=False)


def test_two_epochs_lower_the_loss_and_write_the_run_folder(run):
    out = run.run_dir
    assert {p.name for p in out.iterdir()} >= {"best.pt", "last.pt", "metrics.csv", "config.yaml"}
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and tuple(rows[0]) == METRIC_COLUMNS
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[0]["train_align"]) > 0 and 0 <= float(rows[1]["val_accuracy"]) <= 1
    assert 0 <= float(rows[1]["val_att_cos_5"]) <= 1 and float(rows[0]["lr"]) == 0.01
    saved = yaml.safe_load(open(out / "config.yaml"))
    assert saved["backbone"] == "resnet18" and saved["au_layers"] == [5] and saved["epochs"] == 2
    assert run.epochs_done == 2 and 1 <= run.best_epoch <= 2 and not run.stopped_early

    from aucues.train.checkpoint import load_checkpoint

    model, info = load_checkpoint(out / "best.pt")
    assert info["epoch"] == run.best_epoch and model.preprocess.image_size == 48
    _, last = load_checkpoint(out / "last.pt")
    assert {"optimizer", "scheduler", "rng", "history", "data_order", "train_config"} <= set(last)
    assert last["epoch"] == 2 and len(last["history"]) == 2


def test_resume_reproduces_the_uninterrupted_run(run, synth, tmp_path):
    out = tmp_path / "r"
    first = train(tiny(synth, out, stop_after_epoch=1), progress=False)
    assert first.stopped_early and first.epochs_done == 1
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 1
    second = train(tiny(synth, out, resume=True), progress=False)
    assert second.epochs_done == 2
    a = torch.load(run.last_checkpoint, weights_only=True)["state_dict"]
    b = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert open(out / "metrics.csv").read().count("\n") == 3
    assert [r["train_loss"] for r in second.history] == [r["train_loss"] for r in run.history]


def test_run_folder_guards(run, synth, tmp_path):
    with pytest.raises(AucuesError, match="already holds a run"):
        train(tiny(synth, run.run_dir), progress=False)
    with pytest.raises(AucuesError, match="no .*last.pt to resume"):
        train(tiny(synth, tmp_path / "empty", resume=True), progress=False)
    with pytest.raises(AucuesError, match="config differs"):
        train(tiny(synth, run.run_dir, resume=True, lr=0.5, epochs=3), progress=False)
    with pytest.raises(AucuesError, match="unknown backbone"):
        train(tiny(synth, tmp_path / "x", backbone="resnet7"), progress=False)


def test_without_landmarks_training_is_ce_only(synth, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synth, data)
    (data / "basic/aucues_landmarks68.sqlite").unlink()
    r = train(tiny(data, tmp_path / "r", epochs=1, limit_train=16, val_fraction=0.0), progress=False)
    row = r.history[0]
    assert row["train_align"] == 0 and row["val_accuracy"] is None and r.best_checkpoint.exists()


def test_a_diverging_run_stops_in_one_line_and_saves_nothing_of_it(synth, tmp_path):
    """An absurd learning rate makes the loss NaN: training stops at once with one line instead of
    saving NaN weights as the "best" model (measured before: 5 epochs of NaN loss and a NaN best.pt)."""
    out = tmp_path / "r"
    with pytest.raises(AucuesError, match=r"training diverged in epoch 1: .*lower --lr \(now 1e\+12\)") as e:
        train(tiny(synth, out, lr=1e12), progress=False)
    assert "\n" not in str(e.value)
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()

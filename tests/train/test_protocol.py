"""The model-selection protocol (train/protocol.py, docs/method.md §9): in-epoch validation every
max(int(f x batches), 1) steps, selection on the test split as the reference code does, and reports
that say which protocol chose the model."""

from __future__ import annotations

import json

import pytest
import torch

from aucues.errors import AucuesError
from aucues.train.config import resolve_config
from aucues.train.protocol import mid_epoch_due, validation_interval
from aucues.train.trainer import train


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=6, seed=2, image_size=48, progress=False)
    return root


def tiny(synth, out, **over):
    base = dict(data=str(synth), dataset="synthetic", backbone="resnet18", image_size=32, epochs=2,
                batch_size=4, lr=0.01, num_workers=0, seed=0, out=str(out), val_fraction=0.25)
    return resolve_config(None, {**base, **over})


def test_interval_matches_the_reference_rule():
    assert validation_interval(100, 0.0) is None
    assert validation_interval(100, 0.0437) == 4      # int(4.37)
    assert validation_interval(10, 0.0437) == 1       # int(0.437) = 0 -> at least 1
    assert validation_interval(1000, 0.0437) == 43
    due = [i for i in range(13) if mid_epoch_due(i, 13, 0.25)]
    assert due == [3, 6, 9, 12]                       # never after batch 0
    assert not any(mid_epoch_due(i, 13, 0.0) for i in range(13))


def test_config_checks():
    with pytest.raises(AucuesError, match="select_on must be one of val, test"):
        resolve_config(None, {"select_on": "train"})
    with pytest.raises(AucuesError, match="valid_every_fraction must be in"):
        resolve_config(None, {"valid_every_fraction": 1.0})
    for name in ("paper_rafdb", "paper_affectnet"):
        cfg = resolve_config(name)
        assert cfg.valid_every_fraction == 0.0437 and cfg.select_on == "val"
    assert resolve_config(None).valid_every_fraction == 0.0 and resolve_config(None).select_on == "val"


def test_default_validates_once_per_epoch(synth, tmp_path):
    r = train(tiny(synth, tmp_path / "r", epochs=1, limit_train=12), progress=False)
    sel = json.loads((tmp_path / "r" / "selection.json").read_text())
    assert sel["select_on"] == "val" and sel["valid_every_fraction"] == 0.0
    assert "held-out 0.25 of train" in sel["selected_on"] and sel["best"]["epoch"] == 1
    assert [(v["epoch"], v["step"]) for v in sel["validations"]] == [(1, None)]
    assert r.best_epoch == 1


def test_in_epoch_validation_and_best_selection(synth, tmp_path):
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.build import build_data

    cfg = tiny(synth, tmp_path / "r", epochs=1, valid_every_fraction=0.3)
    _, train_ds, val_ds = build_data(cfg)
    n_batches = -(-len(train_ds) // cfg.batch_size)
    every = validation_interval(n_batches, 0.3)
    steps = [i + 1 for i in range(n_batches) if i > 0 and i % every == 0]
    assert steps, "the tiny set should have several validation points per epoch"
    r = train(cfg, progress=False)
    sel = json.loads((tmp_path / "r" / "selection.json").read_text())
    got = [(v["epoch"], v["step"]) for v in sel["validations"]]
    assert got == [(1, s) for s in steps + [None]]
    # the best is the first validation with the highest accuracy (ties: lower CE), wherever it fell
    best = max(sel["validations"], key=lambda v: (v["accuracy"], -v["ce"]))
    assert (sel["best"]["accuracy"], sel["best"]["epoch"], sel["best"].get("step")) == \
        (best["accuracy"], best["epoch"], best["step"])
    model, info = load_checkpoint(r.best_checkpoint)
    assert info["best"] == sel["best"] and info["train_config"]["valid_every_fraction"] == 0.3
    # best.pt holds that model: re-validating it gives the recorded accuracy
    from torch.utils.data import DataLoader

    from aucues.train.data import collate
    from aucues.train.evaluate import validate

    v = validate(model, DataLoader(val_ds, batch_size=8, collate_fn=collate), torch.device("cpu"))
    assert abs(v["accuracy"] - best["accuracy"]) < 1e-6


def test_select_on_test_uses_the_test_split(synth, tmp_path):
    from aucues.train.build import build_data

    index, train_ds, val_ds = build_data(tiny(synth, tmp_path / "r", select_on="test"))
    # the reference's protocol: all of train trains, the test split selects
    assert len(val_ds) == len(index.split("test")) and len(train_ds) == len(index.split("train"))
    assert {r.split for r in val_ds.records} == {"test"}
    _, held_train, held_val = build_data(tiny(synth, tmp_path / "r"))
    assert {r.split for r in held_val.records} == {"train"} and len(held_train) < len(train_ds)


def test_cli_select_on_test_is_reported_by_the_run_and_evaluate(synth, tmp_path, cli):
    import yaml

    from aucues.train.evaluate import evaluate

    out = tmp_path / "c"
    code, text = cli("train", "--data", synth, "--dataset", "synthetic", "--backbone", "resnet18", "--epochs", 1,
                     "--batch-size", 8, "--image-size", 32, "--out", out, "--num-workers", 0, "--quiet",
                     "--select-on", "test", "--valid-every-fraction", 0.5)
    assert code == 0, text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["select_on"] == "test" and saved["valid_every_fraction"] == 0.5
    assert "test (reference protocol) accuracy" in text and "model selection on the test split" in text
    sel = json.loads((out / "selection.json").read_text())
    assert sel["select_on"] == "test" and "optimistic" in sel["selected_on"]
    # 28 train images = 4 batches: every max(int(0.5 x 4), 1) = 2 -> after batch index 2, i.e. step 3
    assert [v["step"] for v in sel["validations"]] == [3, None]
    res = evaluate(out / "best.pt", synth, "synthetic", split="test", cam_methods=(), progress=False)
    assert res["selection"] == {"select_on": "test", "valid_every_fraction": 0.5, "optimistic": True}
    assert evaluate(out / "best.pt", synth, "synthetic", split="train", cam_methods=(),
                    progress=False)["selection"]["optimistic"] is False
    code, text = cli("evaluate", out / "best.pt", "--data", synth, "--dataset", "synthetic", "--cams", "none")
    assert code == 0 and "model selection: on the test split" in text and "optimistic" in text
    code, text = cli("train", "--data", synth, "--dataset", "synthetic", "--select-on", "everything",
                     "--out", tmp_path / "x")
    assert code == 1 and "select_on must be one of" in text

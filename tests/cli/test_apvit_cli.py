"""`aucues train --method apvit` through the real entry point, with and without the AU loss, then
`evaluate` reports classification and ATT-COS and says that APViT has no CAM. The architecture is
built narrower and shallower (train/models/apvit.py SIZES) to keep the test fast."""

from __future__ import annotations

import json

import pytest
import yaml

TINY = {"units": (1, 1, 1), "depth": 5, "embed_dim": 32, "num_heads": 2}


@pytest.fixture()
def tiny_apvit(monkeypatch):
    import aucues.train.models.apvit as apvit

    monkeypatch.setattr(apvit, "SIZES", TINY)


@pytest.mark.parametrize("au", [False, True])
def test_train_apvit_then_evaluate(cli, tiny_synth, tmp_path, tiny_apvit, au):
    out = tmp_path / "run"
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--method", "apvit",
                     "--method-option", "k=40", *(() if au else ("--no-au",)), "--epochs", 1, "--batch-size", 8,
                     "--image-size", 64, "--out", out, "--num-workers", 0, "--quiet")
    assert code == 0, text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["backbone"] == "apvit" and saved["au_loss"] is au and saved["au_layers"] == [1]
    assert saved["method_options"] == {"k": 40, "r": 0.9}
    code, text = cli("evaluate", out / "best.pt", "--data", tiny_synth, "--dataset", "synthetic", "--json")
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    assert r["has_cam"] is False and r["cam_cos"] is None and r["cam_cos_gradcam"] is None
    assert set(r["att_cos"]) == {"1", "2", "3", "4", "5"} and r["att_cos"]["1"] is not None
    code, text = cli("evaluate", out / "best.pt", "--data", tiny_synth, "--dataset", "synthetic")
    assert code == 0, text
    assert "apvit has no CAM: CAM-COS not applicable" in " ".join(text.split()) and "CAM-COS (gradcam)" not in text


def test_apvit_rejects_another_backbone_and_bad_k(cli, tiny_synth, tmp_path):
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--method", "apvit",
                     "--backbone", "resnet18", "--out", tmp_path / "r")
    assert code == 1 and text.strip().startswith("error: config: backbone is fixed by method apvit"), text
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--method", "apvit",
                     "--method-option", "r=1.5", "--out", tmp_path / "r")
    assert code == 1 and "apvit option r must be" in text and len(text.strip().splitlines()) == 1, text

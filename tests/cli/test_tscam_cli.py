"""`aucues train --backbone tscam` through the real entry point, with and without the AU loss, then
`evaluate` reports CAM and layer-attention alignment for it."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.parametrize("au", [False, True])
def test_train_tscam_then_evaluate(cli, tiny_synth, tmp_path, au):
    out = tmp_path / "run"
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--backbone", "tscam",
                     *(() if au else ("--no-au",)), "--epochs", 1, "--batch-size", 8, "--image-size", 64,
                     "--out", out, "--num-workers", 0, "--quiet")
    assert code == 0, text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["backbone"] == "tscam" and saved["au_loss"] is au
    code, text = cli("evaluate", out / "best.pt", "--data", tiny_synth, "--dataset", "synthetic", "--json",
                     "--cams", "none")
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    assert r["cam_cos"] is not None and set(r["att_cos"]) == {"1", "2", "3", "4", "5"}


def test_tscam_rejects_a_resnet_method(cli, tiny_synth, tmp_path):
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--backbone", "tscam",
                     "--method", "prm", "--out", tmp_path / "r")
    assert code == 1 and text.strip().startswith("error: method prm needs a ResNet backbone"), text
    assert len(text.strip().splitlines()) == 1

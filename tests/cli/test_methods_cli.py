"""`aucues train --method` through the real entry point: a method run (AU loss off) saves the method
in config.yaml and the checkpoint, evaluate reports it; bad methods/options get one line, exit 1."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.mark.parametrize("args,message", [
    (["--method", "foo"], "error: unknown method 'foo'; choose one of: cam, acol, adl, apvit, cutmix, prm, tscam, wildcat"),
    (["--method", "acol", "--backbone", "vit_b_16"], "error: method acol needs a ResNet backbone"),
    (["--method", "wildcat", "--method-option", "kmax=2"], "error: wildcat option kmax must be a number in (0.0, 1.0]"),
    (["--method", "prm", "--method-option", "size=3"], "error: unknown prm option(s) size; valid options: ks, st"),
    (["--method", "adl", "--method-option", "drop_rate"], "error: --method-option expects KEY=VALUE"),
])
def test_bad_method_one_line_exit_1(cli, tiny_synth, tmp_path, args, message):
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--backbone", "resnet18",
                     "--out", tmp_path / "r", *args)
    assert code == 1 and text.strip().startswith(message) and len(text.strip().splitlines()) == 1, text
    assert not (tmp_path / "r").exists()


def test_train_a_method_without_au_loss_then_evaluate(cli, tiny_synth, tmp_path):
    out = tmp_path / "run"
    code, text = cli("train", "--data", tiny_synth, "--dataset", "synthetic", "--backbone", "resnet18",
                     "--method", "wildcat", "--method-option", "reference_pooling=true", "--no-au",
                     "--epochs", 1, "--batch-size", 8, "--image-size", 40, "--out", out, "--num-workers", 0,
                     "--quiet")
    assert code == 0, text
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "wildcat" and saved["au_loss"] is False
    assert saved["method_options"] == {"modalities": 5, "kmax": 0.5, "kmin": 0.1, "alpha": 0.6,
                                       "reference_pooling": True}
    code, text = cli("evaluate", out / "best.pt", "--data", tiny_synth, "--dataset", "synthetic", "--json",
                     "--cams", "none")
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    assert r["method"] == "wildcat" and r["cam_cos"] is not None and set(r["att_cos"]) == {"1", "2", "3", "4", "5"}

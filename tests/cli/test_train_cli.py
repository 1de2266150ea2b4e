"""`aucues train`, `aucues evaluate` and `aucues data prepare` end to end on a tiny synthetic set;
bad input gets one line and a non-zero exit."""

from __future__ import annotations

import json

import pytest
import yaml


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=6, seed=3, image_size=48, progress=False)
    return root


def test_train_then_evaluate(cli, synth, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"lr": 0.01, "epochs": 5, "val_fraction": 0.2}))
    out = tmp_path / "run"
    code, text = cli("train", "--data", synth, "--dataset", "synthetic", "--backbone", "resnet18",
                     "--epochs", 1, "--batch-size", 8, "--image-size", 40, "--out", out, "--config", cfg,
                     "--au-layers", "4,5", "--au-lambda", 4, "--num-workers", 0, "--seed", 1, "--quiet")
    assert code == 0, text
    assert "best:" in text and (out / "best.pt").exists()
    saved = yaml.safe_load((out / "config.yaml").read_text())
    # flags beat the file, the file beats the defaults
    assert (saved["epochs"], saved["lr"], saved["val_fraction"], saved["au_layers"], saved["au_lambda"]) == \
        (1, 0.01, 0.2, [4, 5], 4.0)

    code, text = cli("evaluate", out / "best.pt", "--data", synth, "--dataset", "synthetic", "--split", "test",
                     "--json", "--cams", "gradcam")
    assert code == 0, text
    r = json.loads(text.strip().splitlines()[-1])
    assert r["n_images"] == 14 and 0 <= r["accuracy"] <= 1 and set(r["att_cos"]) == {"1", "2", "3", "4", "5"}
    assert r["cam_cos_gradcam"] is not None and r["cam_cos_layercam"] is None

    code, text = cli("evaluate", out / "best.pt", "--data", synth, "--dataset", "synthetic", "--cams", "none")
    assert code == 0 and "ATT-COS layer 5" in text and "per-class accuracy" in text

    # resume: continue the finished 1-epoch run to 2 epochs, from its saved config
    code, text = cli("train", "--out", out, "--resume", "--epochs", 2, "--quiet")
    assert code == 0, text
    assert (out / "metrics.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("args, words", [
    (["train", "--dataset", "synthetic"], "no dataset given"),
    (["train", "--data", "{synth}", "--dataset", "cifar"], "dataset must be one of"),
    (["train", "--data", "{synth}", "--dataset", "synthetic", "--au-lambda", "-1"], "au_lambda"),
    (["train", "--data", "{synth}", "--dataset", "synthetic", "--au-layers", "7"], "au_layers"),
    (["train", "--data", "{synth}", "--dataset", "synthetic", "--backbone", "resnet7", "--out", "{tmp}/r"],
     "unknown backbone"),
    (["train", "--data", "{tmp}/nowhere", "--dataset", "rafdb", "--out", "{tmp}/r"], "no such dataset folder"),
    (["train", "--out", "{tmp}/r", "--resume"], "no {tmp}/r/last.pt to resume"),
    (["train", "--data", "{synth}", "--config", "{tmp}/missing.yaml"], "not found"),
    (["evaluate", "{tmp}/none.pt", "--data", "{synth}", "--dataset", "synthetic"], "no such checkpoint"),
    (["data", "prepare", "rafdb", "--root", "{tmp}/nowhere"], "no such folder"),
    (["data", "prepare", "rafdb", "--root", "{synth}"], "no basic/Image/original/"),
    (["data", "prepare", "cifar", "--root", "{synth}"], "cannot prepare 'cifar'"),
])
def test_bad_input_is_one_line(cli, synth, tmp_path, args, words):
    args = [a.format(synth=synth, tmp=tmp_path) for a in args]
    code, text = cli(*args)
    assert code != 0
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0], text
    assert words.format(tmp=tmp_path) in " ".join(text.split()), text

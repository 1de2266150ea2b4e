"""`aucues import reference` through the real entry point: the imported model goes through
`export`, `repository build`, the serving pipeline and `evaluate` unchanged; bad input is one line,
exit 1 and no file; `--dir` imports a whole tree, prints a table and fails only the broken models."""

from __future__ import annotations

import json

import pytest
import torch

from tests.cli.reference_edits import edit_weights, edit_yaml
from tests.conftest import one_error_line
from tests.train.reference_layout import make_reference_folder

SIZE = 64


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from aucues.synth import synthesize

    root = tmp_path_factory.mktemp("synth")
    synthesize(root, per_class=3, seed=4, image_size=SIZE, progress=False)
    return root


@pytest.mark.slow  # ~11 s of CPU, 25-30 s of wall time on the shared two cores
def test_import_then_export_repository_pipeline_evaluate(cli, tmp_path, synth, astronaut_path):
    from aucues.export import read_metadata
    from aucues.labels import CLASS_NAMES
    from aucues.serve.pipeline import Pipeline

    folder, *_ = make_reference_folder(tmp_path / "shared-trained-models", "RAF-DB", "LayerCAM", True,
                                       encoder="resnet18", crop=SIZE, layers="5-4", lam=4.0)
    ckpt = tmp_path / "ref.pt"
    code, text = cli("import", "reference", folder, "--out", ckpt)
    assert code == 0, text
    assert "RAF-DB resnet18 LayerCAM (with AU loss, layers [5, 4] lambda 4)" in text and "layercam" in text

    onnx = tmp_path / "ref.onnx"
    code, text = cli("export", ckpt, "--out", onnx, "--exporter", "torchscript", "--batch", "2")
    assert code == 0 and "verified" in text, text
    meta = read_metadata(onnx)
    assert meta["au"]["layers"] == [5, 4] and meta["preprocess"]["codebook"] == "reference"

    code, text = cli("repository", "build", "--out", tmp_path / "repo", "--onnx", onnx)
    assert code == 0, text
    assert (tmp_path / "repo" / "aucues" / "config.pbtxt").exists()

    p = Pipeline(onnx)
    try:
        r = p.predict(astronaut_path.read_bytes())
    finally:
        p.close()
    assert r["label"] in CLASS_NAMES and abs(sum(r["probabilities"].values()) - 1) < 1e-4

    code, text = cli("evaluate", ckpt, "--data", synth, "--dataset", "synthetic", "--json", "--cams", "none")
    assert code == 0, text
    assert json.loads(text.strip().splitlines()[-1])["n_images"] > 0



BAD = {
    "no model.pt": (lambda f: (f / "model.pt").unlink(), "missing model.pt"),
    "no yaml": (lambda f: (f / "config_model.yaml").unlink(), "missing config_model.yaml"),
    "empty folder": (lambda f: [(f / n).unlink() for n in ("model.pt", "config_model.yaml")],
                     "missing config_model.yaml and model.pt"),
    "foreign yaml": (lambda f: (f / "config_model.yaml").write_text("lr: 0.1\nepochs: 3\n"),
                     "not the reference's config_model.yaml (missing method, spatial_pooling"),
    "not yaml": (lambda f: (f / "config_model.yaml").write_text("a: [1, 2\n"), "not valid YAML"),
    "model keys": (lambda f: edit_yaml(f, lambda d: d["model"].pop("large_maps")), "'model' must hold"),
    "unsupported method": (lambda f: edit_yaml(f, lambda d: d.update(method="ScoreCAM")),
                           "reference method 'ScoreCAM' is not supported yet"),
    "unknown method": (lambda f: edit_yaml(f, lambda d: d.update(method="FancyCAM")), "unknown reference method 'FancyCAM'"),
    "wrong pooling": (lambda f: edit_yaml(f, lambda d: d.update(spatial_pooling="PRM")), "expected WGAP"),
    "missing key": (lambda f: edit_weights(f, lambda d: d["encoder"].pop("layer2.0.conv1.weight")),
                    "does not match: missing backbone.layer2.0.conv1.weight"),
    "extra key": (lambda f: edit_weights(f, lambda d: d["encoder"].update({"layer9.w": torch.zeros(1)})),
                  "unexpected backbone.layer9.w"),
    "head shape": (lambda f: edit_weights(f, lambda d: d["classification_head"].update({"fc.weight": torch.zeros(8, 512)})),
                   r"classification_head of a WGAP CAM model does not match: wrong shape fc.weight (8, 512)"),
    "flat state dict": (lambda f: torch.save({"conv1.weight": torch.zeros(1)}, f / "model.pt"),
                        "expected a dict with 'encoder' and 'classification_head'"),
    "not torch": (lambda f: (f / "model.pt").write_bytes(b"hello"), "not a readable torch file"),
    "nan weights": (lambda f: edit_weights(f, lambda d: d["encoder"]["conv1.weight"].fill_(float("nan"))),
                    "non-finite values in backbone.conv1.weight"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_nothing_written(cli, tmp_path, case):
    folder, *_ = make_reference_folder(tmp_path, "RAF-DB", "CAM", True, encoder="resnet18", crop=SIZE)
    spoil, words = BAD[case]
    spoil(folder)
    out = tmp_path / "out" / "m.pt"
    code, text = cli("import", "reference", folder, "--out", out)
    assert code == 1, text
    assert words in one_error_line(text)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_argument_errors(cli, tmp_path):
    code, text = cli("import", "reference", "--out", tmp_path / "m.pt")
    assert code == 1 and "EXP_DIR" in one_error_line(text)
    code, text = cli("import", "reference", tmp_path / "nowhere", "--out", tmp_path / "m.pt")
    assert code == 1 and "no such folder" in one_error_line(text)
    code, text = cli("import", "reference", "--dir", tmp_path, "--out", tmp_path / "o")
    assert code == 1 and "no released model folders" in one_error_line(text)


def test_dir_imports_the_tree_and_reports_failures(cli, tmp_path):
    root = tmp_path / "shared-trained-models"
    make_reference_folder(root, "RAF-DB", "CAM", True, encoder="resnet18", crop=SIZE, seed=1)
    make_reference_folder(root, "RAF-DB", "CAM", False, encoder="resnet18", crop=SIZE, seed=2)
    make_reference_folder(root, "AffectNet", "ADL", True, encoder="resnet18", crop=SIZE, seed=3)
    # a PRM run whose model.pt holds a WGAP head (fc.*) instead of PRM's conv.*: that folder fails
    bad, *_ = make_reference_folder(root, "AffectNet", "PRM", True, encoder="resnet18", crop=SIZE, seed=4)
    edit_yaml(bad, lambda d: d.update(spatial_pooling="PRM"))
    out = tmp_path / "imported"
    code, text = cli("import", "reference", "--dir", root, "--out", out)
    assert code == 1, text  # one model failed
    assert "3 imported" in text and "1 failed" in text and "failed:" in text
    flat = "".join(c for c in text if c.isalnum() or c in "'")  # the table wraps long messages
    assert "classificationheadofaPRMmodeldoesnotmatch" in flat
    names = sorted(p.name for p in out.iterdir())
    assert names == ["AffectNet-resnet18-ADL-WGAP-cp_best-boxv2_False-au.pt",
                     "RAF-DB-resnet18-CAM-WGAP-cp_best-boxv2_False-au.pt",
                     "RAF-DB-resnet18-CAM-WGAP-cp_best-boxv2_False-noau.pt"]
    for row in ("RAF-DB", "AffectNet", "ADL", "PRM"):
        assert row in text
    # without the broken model every import succeeds: exit 0
    import shutil

    shutil.rmtree(bad)
    code, text = cli("import", "reference", "--dir", root, "--out", tmp_path / "again")
    assert code == 0 and "3 imported" in text and "0 failed" in text, text

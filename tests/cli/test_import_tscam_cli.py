"""`aucues import reference` on released TS-CAM folders through the real entry point: a good folder
imports (exit 0, a `tscam` checkpoint); a spoilt one (missing or wrong-shaped keys, a split
encoder/head file, a crop that does not fit the position embedding, another DeiT size, the wrong arch,
an impossible layer) is one `error:` line, exit 1, and no file."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.cli.reference_edits import edit_weights, edit_yaml
from tests.conftest import one_error_line
from tests.train.reference_tscam_layout import make_tscam_folder

SIZE = 32  # a 2x2 token grid keeps each import quick; the architecture is full DeiT-S


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    folder, _ = make_tscam_folder(tmp_path_factory.mktemp("ref"), "RAF-DB", au=True, crop=SIZE, seed=3)
    return folder


def _copy(template, tmp_path):
    dst = tmp_path / "FG_FER" / template.name
    shutil.copytree(template, dst)
    return dst


def test_good_folder_imports(cli, template, tmp_path):
    code, text = cli("import", "reference", _copy(template, tmp_path), "--out", tmp_path / "m.pt")
    assert code == 0, text
    ck = torch.load(tmp_path / "m.pt", weights_only=False, map_location="cpu")
    assert ck["model_config"]["backbone"] == "tscam" and ck["model_config"]["method"] == "tscam"


BAD = {
    "missing key": (lambda f: edit_weights(f, lambda d: [d.pop("blocks.7.mlp.fc1.weight")]),
                    "does not match: missing blocks.7.mlp.fc1.weight"),
    "head shape": (lambda f: edit_weights(f, lambda d: d.update({"head.weight": torch.zeros(7, 384, 1, 1)})),
                   "wrong shape head.weight (7, 384, 1, 1) (expected (7, 384, 3, 3))"),
    "prefixed keys": (lambda f: edit_weights(f, lambda d: {f"backbone.{k}": v for k, v in d.items()}),
                      "does not match: missing cls_token"),
    "split file": (lambda f: edit_weights(f, lambda d: {"encoder": d, "classification_head": {}}),
                   "expected the whole model's state dict"),
    "crop vs pos_embed": (lambda f: edit_yaml(f, lambda d: d.update(crop_size=64)),
                          "wrong shape pos_embed (1, 5, 384) (expected (1, 17, 384))"),
    "deit tiny": (lambda f: edit_yaml(f, lambda d: d["model"].update(encoder_name="deit_tscam_tiny_patch16_224")),
                  "encoder 'deit_tscam_tiny_patch16_224' is not supported (one of deit_tscam_small_patch16_224)"),
    "std arch": (lambda f: edit_yaml(f, lambda d: d["model"].update(arch="STDClassifier", encoder_name="resnet50")),
                 "method TSCAM with model arch 'STDClassifier' (expected TSCAMClassifier)"),
    "layer 3": (lambda f: edit_yaml(f, lambda d: d.update(align_atten_to_heatmap_layers="3")),
                "TS-CAM has layers 1 (the patch-token map) and 2"),
    "nan": (lambda f: edit_weights(f, lambda d: d["norm.weight"].fill_(float("nan"))),
            "non-finite values in backbone.norm.weight"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_one_line_nothing_written(cli, template, tmp_path, case):
    folder = _copy(template, tmp_path)
    spoil, words = BAD[case]
    spoil(folder)
    out = tmp_path / "out" / "m.pt"
    code, text = cli("import", "reference", folder, "--out", out)
    assert code == 1, text
    assert words in one_error_line(text)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_dir_imports_a_tscam_folder(cli, template, tmp_path):
    _copy(template, tmp_path)
    code, text = cli("import", "reference", "--dir", tmp_path / "FG_FER", "--out", tmp_path / "imported")
    assert code == 0, text
    assert [p.name for p in (tmp_path / "imported").iterdir()] == [f"{template.name}-au.pt"]

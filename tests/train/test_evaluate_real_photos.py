"""The interpretability audit of any model on a folder of real labelled photos (issue 12):
`aucues evaluate MODEL --data DIR --dataset folder` finds and frames the faces on the fly (no
landmark cache) as each model expects, and reports accuracy with ATT-COS/CAM-COS."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """Photos we ship whose expression is clear: the smiling astronaut and the two laughing men of
    t1.jpg (cut out around their faces); a blank image (no face) to be skipped."""
    from aucues.assets import photo
    from aucues.io import read_image, write_image

    root = tmp_path_factory.mktemp("real")
    happy = root / "test" / "Happiness"
    happy.mkdir(parents=True)
    write_image(happy / "astronaut.png", read_image(photo("astronaut.png")))
    t1 = read_image(photo("t1.jpg"))
    write_image(happy / "t1_centre_left.png", t1[220:480, 380:650])
    write_image(happy / "t1_centre.png", t1[300:540, 660:900])
    (root / "test" / "Neutral").mkdir()
    write_image(root / "test" / "Neutral" / "blank.png", np.full((120, 120, 3), 127, np.uint8))
    return root


def test_audit_the_fer_model_on_real_photos(cli, fer_checkpoint, real_folder):
    code, out = cli("evaluate", fer_checkpoint, "--data", real_folder, "--dataset", "folder",
                    "--cams", "gradcam", "--json")
    assert code == 0, out
    r = json.loads(out.strip().splitlines()[-1])
    assert r["n_images"] == 3 and r["n_skipped"] == 1  # the blank image has no face
    assert r["landmarks"].startswith("MediaPipe on the fly") and "box" in r["landmarks"]
    assert r["accuracy"] == 1.0, r["confusion_matrix"]  # three clear smiles
    for v in [*r["att_cos"].values(), r["cam_cos"], r["cam_cos_gradcam"]]:
        assert v is not None and 0.0 < v < 1.0


def test_audit_a_five_point_model_too(real_folder, tmp_path):
    """Any aucues model: a (random) RGB ResNet18 at 48 px gets five-point crops of the same photos."""
    import torch

    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.evaluate import evaluate
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    ck = tmp_path / "r18.pt"
    save_checkpoint(ck, build_model(ModelConfig(backbone="resnet18", large_maps=False), PreprocessConfig(image_size=48)))
    r = evaluate(ck, real_folder, "folder", split="test", cam_methods=(), progress=False)
    assert r["n_images"] == 3 and r["n_skipped"] == 1 and "five_point" in r["landmarks"]
    assert all(v is not None for v in r["att_cos"].values()) and r["cam_cos"] is not None


def test_no_face_anywhere_is_one_line(cli, fer_checkpoint, tmp_path):
    from aucues.io import write_image

    d = tmp_path / "test" / "Happiness"
    d.mkdir(parents=True)
    write_image(d / "blank.png", np.full((100, 100, 3), 127, np.uint8))
    code, out = cli("evaluate", fer_checkpoint, "--data", tmp_path, "--dataset", "folder", "--cams", "none")
    lines = [l for l in out.strip().splitlines() if l.strip()]
    assert code == 1 and len(lines) == 1 and "no face" in lines[0], out

"""`aucues aus` on a real photo (real MediaPipe), and its one-line errors."""

from __future__ import annotations

import json

import numpy as np

from aucues.io import read_image, write_image


def test_aus_draw_and_json(cli, astronaut_path, tmp_path):
    out = tmp_path / "happy.png"
    code, text = cli("aus", astronaut_path, "--expression", "Happiness", "--draw", out, "--json")
    assert code == 0, text
    doc = json.loads(text)
    assert doc["expression"] == "Happiness" and doc["valid"] is True and doc["faces"] == 1
    assert [r["au"] for r in doc["aus"]] == [6, 12, 25] and all(r["in_crop"] for r in doc["aus"])
    img = read_image(out)
    assert img.shape == (448, 448, 3)  # the 224 crop drawn at 2x
    assert img.std() > 20  # a face with a heatmap, not a blank canvas


def test_aus_table_other_kinds(cli, astronaut_path, tmp_path):
    out = tmp_path / "pc.png"
    code, text = cli("aus", astronaut_path, "-e", "disgust", "--kind", "per_class", "--codebook", "reference",
                     "--size", "112", "--draw", out)
    assert code == 0, text
    assert "AU5" in text and "AU10" not in text and "reference" in text
    assert read_image(out).shape == (224, 224, 3)


def test_aus_bad_input(cli, astronaut_path, tmp_path):
    blank = tmp_path / "blank.png"
    write_image(blank, np.full((200, 200, 3), 127, np.uint8))
    cases = [
        (("aus", astronaut_path, "--expression", "bored"), "unknown expression"),
        (("aus", tmp_path / "missing.png", "--expression", "happy"), "no such file"),
        (("aus", blank, "--expression", "happy"), "no face"),
        (("aus", astronaut_path, "-e", "happy", "--kind", "blob"), "unknown --kind"),
        (("aus", astronaut_path, "-e", "happy", "--codebook", "x"), "unknown --codebook"),
    ]
    for args, msg in cases:
        code, text = cli(*args)
        assert code != 0, args
        assert msg in text and "Traceback" not in text, text
        assert len([ln for ln in text.splitlines() if ln.strip()]) == 1, text


def test_aus_uses_the_models_crop(cli, astronaut_path, tmp_path):
    """--model: the regions are drawn on the crop that model sees (its template and size)."""
    import json

    import torch

    from aucues.align import LEGACY_TEMPLATE
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.checkpoint import save_checkpoint
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    pre = PreprocessConfig(image_size=96).with_template(LEGACY_TEMPLATE)
    save_checkpoint(tmp_path / "m.pt", build_model(ModelConfig(backbone="resnet18", attention_layers=(5,)), pre))
    code, text = cli("aus", astronaut_path, "-e", "Happiness", "--json")
    assert code == 0, text
    default = json.loads(text)
    code, text = cli("aus", astronaut_path, "-e", "Happiness", "--json", "--model", tmp_path / "m.pt")
    assert code == 0, text
    legacy = json.loads(text)
    assert default["size"] == 224 and legacy["size"] == 96
    # AU12 (mouth corners): at 82% of the height in the reference crop, 63% in the legacy one
    y_default = np.mean([e[1] for e in default["aus"][1]["ellipses"]]) / 224
    y_legacy = np.mean([e[1] for e in legacy["aus"][1]["ellipses"]]) / 96
    assert abs(y_default - 0.82) < 0.05 and abs(y_legacy - 0.63) < 0.05, (y_default, y_legacy)

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

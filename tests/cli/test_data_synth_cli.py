"""`aucues data synth`: a small run with a preview, one-line errors, refusing to clobber."""

from __future__ import annotations

from aucues.io import read_image
from aucues.synth import LABELS


def test_synth_cli_runs(cli, tmp_path):
    out, sheet = tmp_path / "bench", tmp_path / "sheet.png"
    code, text = cli("data", "synth", "--out", out, "--per-class", "2", "--seed", "1", "--image-size", "64",
                     "--test-share", "0.5", "--quiet", "--preview", sheet)
    assert code == 0, text
    assert "Happiness" in text and "all" in text
    assert len((out / LABELS).read_text().splitlines()) == 14
    assert read_image(sheet).shape[0] == 7 * 192


def test_synth_cli_errors(cli, tmp_path):
    out = tmp_path / "bench"
    for args, msg in (
        (("--per-class", "0"), "--per-class"),
        (("--per-class", "2", "--distractor-share", "1.5"), "--distractor-share"),
        (("--per-class", "2", "--test-distractor-share", "-0.1"), "--test-distractor-share"),
        (("--per-class", "2", "--image-size", "4"), "image_size"),
    ):
        code, text = cli("data", "synth", "--out", out, *args)
        assert code != 0 and msg in text and "Traceback" not in text, text
        assert len(text.strip().splitlines()) == 1, text
    code, text = cli("data", "synth", "--out", out, "--per-class", "1", "--image-size", "48", "--quiet")
    assert code == 0, text
    code, text = cli("data", "synth", "--out", out, "--per-class", "1", "--image-size", "48", "--quiet")
    assert code == 1 and "--force" in text
    code, text = cli("data", "synth", "--out", out, "--per-class", "1", "--image-size", "48", "--quiet", "--force")
    assert code == 0, text
    code, text = cli("data", "synth", "--out", tmp_path, "--per-class", "1")
    assert code == 1 and "not a previous synth output" in text

"""`aucues data prepare rafdb` through the real entry point: bad images among good ones are skipped,
counted and named, the run finishes (exit 0) and the landmark cache is the SQLite store."""

from __future__ import annotations

import numpy as np

from aucues.io import read_image, write_image


def test_prepare_reports_bad_images(cli, tmp_path, astronaut_path):
    orig = tmp_path / "basic/Image/original"
    orig.mkdir(parents=True)
    write_image(orig / "train_00001.jpg", read_image(astronaut_path))
    (orig / "train_00002.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    write_image(orig / "train_00003.jpg", np.full((5, 5, 3), 200, np.uint8))
    code, out = cli("data", "prepare", "rafdb", "--root", tmp_path, "--size", "64", "--quiet")
    assert code == 0, out
    assert "3 images, 3 processed now" in out and "faces 1" in out and "bad images skipped 2" in out
    lines = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("skipped:")]
    assert len(lines) == 2 and "train_00002" in lines[0] and "not a decodable image" in lines[0]
    assert "train_00003" in lines[1] and "too small" in lines[1]
    assert (tmp_path / "basic/aucues_landmarks68.sqlite").is_file()

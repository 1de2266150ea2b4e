"""`--landmarker mediapipe|onnx` where landmarks are computed: same faces, same points within 1%."""

from __future__ import annotations

import json
import shutil

import numpy as np


def _faces(cli, path, kind):
    code, text = cli("landmarks", path, "--json", "--landmarker", kind)
    assert code == 0, text
    (item,) = json.loads(text)["images"]
    return item["faces"]


def test_landmarks_onnx_agrees_with_mediapipe(cli, six_faces_path):
    ref, got = _faces(cli, six_faces_path, "mediapipe"), _faces(cli, six_faces_path, "onnx")
    assert len(ref) == len(got) == 6
    for r, g in zip(ref, got):  # both largest first
        rp, gp = np.array(r["points"]), np.array(g["points"])
        assert np.linalg.norm(rp - gp, axis=1).mean() <= 0.01 * np.linalg.norm(rp[36] - rp[45])


def test_batch_with_onnx(cli, tmp_path, astronaut_path):
    root = tmp_path / "ds"
    root.mkdir()
    shutil.copy(astronaut_path, root / "astro.png")
    code, text = cli("landmarks", "--batch", root, "--json", "--landmarker", "onnx")
    assert code == 0, text
    assert json.loads(text)["faces"] == 1


def test_unknown_landmarker_is_one_line_error(cli, astronaut_path):
    code, text = cli("landmarks", astronaut_path, "--landmarker", "dlib")
    assert code == 1
    assert text.strip().splitlines() == ["error: unknown landmarker 'dlib'; choose one of mediapipe, onnx"]

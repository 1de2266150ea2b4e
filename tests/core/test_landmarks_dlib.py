"""aucues' 68 points against dlib's 68-point shape predictor on real photos (real MediaPipe, real dlib).

dlib's predictor was trained on iBUG 300-W, so it is an independent reading of the iBUG-68 definitions.
The bounds are the per-region mean distances measured with aucues.mesh_to_ibug68 (docs/au_maps.md,
"Landmark accuracy") plus a margin; the old fixed vertex map measured jaw 0.138 and brows 0.070 here,
so going back to it fails. dlib missing: skipped locally, a failure under CI=true.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from aucues.io import read_image
from tests.conftest import skip_unless_ci

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48),
           "lips": range(48, 68)}
# Measured after the change (units: dlib's outer-eye distance lm36-lm45; 16 faces): jaw 0.066,
# brows 0.048, nose 0.031, eyes 0.037, lips 0.034. Bound = measured + ~25%.
BOUNDS = {"jaw": 0.085, "brows": 0.060, "nose": 0.040, "eyes": 0.050, "lips": 0.045}


@pytest.fixture(scope="module")
def dlib_68():
    try:
        import dlib
    except ImportError:
        skip_unless_ci("dlib is not installed (pip install dlib-bin face-recognition-models)")
    spec = importlib.util.find_spec("face_recognition_models")  # its __init__ needs pkg_resources
    model = (Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
             if spec and spec.submodule_search_locations else None)
    if model is None or not model.is_file():
        skip_unless_ci("face-recognition-models (dlib's shape_predictor_68_face_landmarks.dat) is not installed")
    detector, predictor = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(model))

    def run(rgb: np.ndarray) -> list[np.ndarray]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return [np.array([(p.x, p.y) for p in predictor(gray, r).parts()], np.float64) for r in detector(gray, 1)]

    return run


def _photos(astronaut_path, six_faces_path, aligned_face_path) -> dict[str, np.ndarray]:
    import matplotlib.cbook

    hanks = read_image(aligned_face_path)  # 112 px aligned crop: dlib's HOG detector needs it larger
    photos = {
        "astronaut": read_image(astronaut_path),
        "t1": read_image(six_faces_path),
        "hanks": cv2.resize(hanks, (448, 448), interpolation=cv2.INTER_CUBIC),
        "hopper": read_image(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
    }
    # Mirrored copies: new pixels for both landmarkers and a check that neither side is favoured.
    photos.update({k + "_mirror": np.ascontiguousarray(v[:, ::-1]) for k, v in list(photos.items())})
    return photos


@pytest.fixture(scope="module")
def pairs(lm, dlib_68, astronaut_path, six_faces_path, aligned_face_path):
    """(name, aucues points, dlib points) for every face both find; and aucues' face counts."""
    out, counts = [], {}
    for name, img in _photos(astronaut_path, six_faces_path, aligned_face_path).items():
        faces = lm.detect(img)
        counts[name] = len(faces)
        for d in dlib_68(img):
            iod = np.linalg.norm(d[36] - d[45])
            f = min(faces, key=lambda f: np.linalg.norm(f.points.mean(0) - d.mean(0)), default=None)
            if f is not None and np.linalg.norm(f.points.mean(0) - d.mean(0)) < 0.5 * iod:
                out.append((name, f.points.astype(np.float64), d))
    return out, counts


def test_no_face_lost(pairs):
    _, counts = pairs
    # Every face MediaPipe finds keeps its 68 points: the six people of t1.jpg, mirrored or not.
    assert counts["t1"] == 6 and counts["t1_mirror"] == 6
    assert all(counts[k] == 1 for k in ("astronaut", "hanks", "hopper", "astronaut_mirror"))


def test_distance_to_dlib_per_region(pairs):
    out, _ = pairs
    assert len(out) >= 16, f"dlib and aucues agreed on only {len(out)} faces"
    err = np.array([np.linalg.norm(p - d, axis=1) / np.linalg.norm(d[36] - d[45]) for _, p, d in out])
    means = {r: float(err[:, list(ix)].mean()) for r, ix in REGIONS.items()}
    over = {r: round(v, 3) for r, v in means.items() if v > BOUNDS[r]}
    assert not over, f"mean distance to dlib above bound: {over} (all: {means})"
    # No single face far off either (the near-profile face of t1.jpg is the worst, ~0.14 of iod).
    assert err.mean(1).max() < 0.2

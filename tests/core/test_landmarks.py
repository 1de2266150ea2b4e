"""MediaPipeLandmarker on real photos with real MediaPipe (no mocks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aucues.errors import AucuesError
from aucues.io import read_image
from aucues.landmarks import MP468_TO_IBUG68, Face, MediaPipeLandmarker


@pytest.fixture(scope="module")
def astro_faces(lm, astronaut_path):
    return lm.detect(read_image(astronaut_path))


@pytest.fixture(scope="module")
def six_faces(lm, six_faces_path):
    return lm.detect(read_image(six_faces_path))


def _area(box):
    return float((box[2] - box[0]) * (box[3] - box[1]))


def _iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return iw * ih / (_area(a) + _area(b) - iw * ih)


def test_index_map_is_68_distinct_mesh_indices():
    assert len(MP468_TO_IBUG68) == 68
    assert len(set(MP468_TO_IBUG68)) == 68
    assert all(0 <= i < 468 for i in MP468_TO_IBUG68)


def test_astronaut_has_exactly_one_face(astro_faces):
    assert len(astro_faces) == 1
    f = astro_faces[0]
    assert isinstance(f, Face)
    assert f.box.shape == (4,) and f.box.dtype == np.float32
    assert f.points.shape == (68, 2) and f.points.dtype == np.float32
    assert 0.5 <= f.score <= 1.0
    # Her face is in the upper middle of the 512x512 picture, about 100 px wide.
    cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
    assert 190 < cx < 260 and 100 < cy < 160
    assert 70 < f.box[2] - f.box[0] < 140


def test_six_faces_all_found_distinct_largest_first(six_faces):
    assert len(six_faces) == 6
    areas = [_area(f.box) for f in six_faces]
    assert areas == sorted(areas, reverse=True)
    for i in range(6):
        for j in range(i + 1, 6):
            assert _iou(six_faces[i].box, six_faces[j].box) < 0.05
    # The six people stand across the whole 1280 px width.
    centres = sorted(float(f.box[0] + f.box[2]) / 2 for f in six_faces)
    assert centres[0] < 200 and centres[-1] > 1100


def test_points_inside_enlarged_box(astro_faces, six_faces):
    # The detector box covers brows to chin; jaw points of a turned head may stick out a little.
    for f in astro_faces + six_faces:
        side = max(f.box[2] - f.box[0], f.box[3] - f.box[1])
        lo, hi = f.box[:2] - 0.25 * side, f.box[2:] + 0.25 * side
        assert (f.points >= lo).all() and (f.points <= hi).all()
        # and the points span most of the box (not collapsed to a corner)
        span = f.points.max(0) - f.points.min(0)
        assert (span > 0.6 * side).all()


def test_facial_anatomy_order(astro_faces, six_faces):
    for f in astro_faces + six_faces:
        p = f.points
        brows, eyes, nose_tip, mouth, chin = p[17:27, 1].mean(), p[36:48, 1].mean(), p[30, 1], p[48:68, 1].mean(), p[8, 1]
        assert brows < eyes < nose_tip < mouth < chin
        # iBUG "right" eye (36-41) is on the image's left
        assert p[36:42, 0].mean() < p[42:48, 0].mean()
        assert p[48, 0] < p[54, 0]


def test_max_faces_keeps_the_largest(lm, six_faces_path, six_faces):
    lm2 = MediaPipeLandmarker(max_faces=2)
    try:
        two = lm2.detect(read_image(six_faces_path))
    finally:
        lm2.close()
    assert len(two) == 2
    np.testing.assert_allclose([f.box for f in two], [f.box for f in six_faces[:2]], atol=1.0)


def test_reused_graphs_are_deterministic(lm, astronaut_path, astro_faces):
    img = read_image(astronaut_path)
    again = lm.detect(img)
    np.testing.assert_allclose(again[0].points, astro_faces[0].points, atol=1e-3)


def test_close_up_aligned_face(lm, aligned_face_path):
    # 112x112 crop that the face fills: the full-range detector alone misses such faces.
    faces = lm.detect(read_image(aligned_face_path))
    assert len(faces) == 1
    p = faces[0].points
    assert p[36:48, 1].mean() < p[48:68, 1].mean()


def test_small_face_in_large_photo(lm, astronaut_path):
    # The astronaut shrunk to 256 px (face ~50 px) on a 2400x1800 grey canvas: found only by tiles.
    small = cv2.resize(read_image(astronaut_path), (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((1800, 2400, 3), 128, np.uint8)
    canvas[1300:1556, 1700:1956] = small
    faces = lm.detect(canvas)
    assert len(faces) == 1
    cx, cy = (faces[0].box[0] + faces[0].box[2]) / 2, (faces[0].box[1] + faces[0].box[3]) / 2
    assert 1700 + 90 < cx < 1700 + 135 and 1300 + 45 < cy < 1300 + 85


def test_no_face_returns_empty(lm):
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 1, 3))
    assert lm.detect(gradient) == []


def test_rejects_non_rgb_arrays(lm):
    with pytest.raises(AucuesError):
        lm.detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(AucuesError):
        lm.detect(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(AucuesError):
        lm.detect(np.zeros((64, 64, 4), np.uint8))


def test_closed_landmarker_refuses(astronaut_path):
    lm = MediaPipeLandmarker()
    lm.close()
    lm.close()  # idempotent
    with pytest.raises(AucuesError):
        lm.detect(read_image(astronaut_path))

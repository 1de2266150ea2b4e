"""5-point alignment on real landmarks from real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aucues.align import ALIGN_TEMPLATE, AlignedFace, align_face, five_points, similarity, transform_points
from aucues.errors import AucuesError
from aucues.io import read_image


@pytest.fixture(scope="module")
def astro(lm, astronaut_path):
    img = read_image(astronaut_path)
    return img, lm.detect(img)[0].points


def _eye_angle(points):
    e0, e1 = points[36:42].mean(0), points[42:48].mean(0)
    return float(np.degrees(np.arctan2(e1[1] - e0[1], e1[0] - e0[0])))


def test_five_points_definition(astro):
    _, p = astro
    f = five_points(p)
    assert f.shape == (5, 2) and f.dtype == np.float32
    np.testing.assert_allclose(f[0], p[36:42].mean(0), atol=1e-4)
    np.testing.assert_allclose(f[1], p[42:48].mean(0), atol=1e-4)
    np.testing.assert_allclose(f[2:], p[[30, 48, 54]], atol=1e-4)


def test_similarity_recovers_a_known_transform():
    ang, s, t = np.radians(17.0), 2.5, np.array([40.0, -12.0])
    m = np.array([[s * np.cos(ang), -s * np.sin(ang)], [s * np.sin(ang), s * np.cos(ang)]])
    src = ALIGN_TEMPLATE * 100
    dst = src @ m.T + t
    for level in (True, False):
        est = similarity(src, dst, level_eyes=level)
        np.testing.assert_allclose(est[:, :2], m, atol=1e-9)
        np.testing.assert_allclose(est[:, 2], t, atol=1e-7)


def test_align_astronaut(astro):
    img, p = astro
    a = align_face(img, p)
    assert isinstance(a, AlignedFace)
    assert a.image.shape == (224, 224, 3) and a.image.dtype == np.uint8
    assert a.points.shape == (68, 2) and a.points.dtype == np.float32
    assert a.matrix.shape == (2, 3) and a.matrix.dtype == np.float32
    assert abs(_eye_angle(a.points)) < 2.0
    # the whole face, brows to chin and jaw, is inside the crop
    assert (a.points > 0).all() and (a.points < 224).all()
    assert a.points[17:27, 1].min() > 0.05 * 224 and a.points[8, 1] < 0.95 * 224
    # landmarks moved with the image
    np.testing.assert_allclose(transform_points(p, a.matrix), a.points, atol=1e-2)
    # the five points land near the template
    assert np.abs(five_points(a.points) - ALIGN_TEMPLATE * 224).max() < 0.06 * 224


def test_rotated_photo_is_levelled(lm, astronaut_path):
    img = read_image(astronaut_path)
    rot = cv2.getRotationMatrix2D((256, 256), 25, 1.0)
    rotated = cv2.warpAffine(img, rot, (512, 512), borderMode=cv2.BORDER_REFLECT)
    p = lm.detect(rotated)[0].points
    assert abs(_eye_angle(p)) > 15  # the face really is tilted in the input
    assert abs(_eye_angle(align_face(rotated, p).points)) < 2.0


def test_aligned_crop_agrees_with_redetection(lm, astro, six_faces_path):
    # The warped landmarks must sit where MediaPipe finds them again on the warped image.
    six = read_image(six_faces_path)
    cases = [astro] + [(six, f.points) for f in lm.detect(six)]
    for img, p in cases:
        a = align_face(img, p)
        again = lm.detect(a.image)
        assert len(again) >= 1
        err = np.linalg.norm(again[0].points - a.points, axis=1).mean()
        assert err < 0.03 * 224, err


def test_template_scales_with_size(astro):
    img, p = astro
    a224, a112, a448 = align_face(img, p, 224), align_face(img, p, 112), align_face(img, p, 448)
    assert a112.image.shape == (112, 112, 3) and a448.image.shape == (448, 448, 3)
    np.testing.assert_allclose(a112.points, a224.points / 2, atol=1e-3)
    np.testing.assert_allclose(a448.points, a224.points * 2, atol=1e-3)


def test_bad_landmarks_are_refused(astro):
    img, p = astro
    with pytest.raises(AucuesError):
        align_face(img, np.full((68, 2), np.nan, np.float32))
    with pytest.raises(AucuesError):
        align_face(img, p[:5])
    with pytest.raises(AucuesError):
        align_face(img, np.zeros((68, 2), np.float32))  # all points coincide
    with pytest.raises(AucuesError):
        align_face(img[:, :, 0], p)

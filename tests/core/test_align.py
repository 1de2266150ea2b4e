"""5-point alignment on real landmarks from real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aucues.align import (LEGACY_TEMPLATE, REFERENCE_TEMPLATE, AlignedFace, AlignTemplate, align_face, five_points,
                          similarity, transform_points)
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
    src = REFERENCE_TEMPLATE.scaled(100)
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
    assert abs(_eye_angle(a.points)) < 3.0
    # landmarks moved with the image
    np.testing.assert_allclose(transform_points(p, a.matrix), a.points, atol=1e-2)
    # the default is the reference crop: the five points land near ArcFace's template x 2, the eye
    # line near 46% of the height, brows inside, the chin at or past the bottom edge
    f = five_points(a.points)
    assert np.abs(f - REFERENCE_TEMPLATE.scaled(224)).max() < 0.06 * 224
    assert abs(f[:2, 1].mean() / 224 - 0.46) < 0.03
    assert a.points[17:27, 1].min() > 0 and a.points[8, 1] > 0.9 * 224


def test_legacy_template_keeps_brows_to_chin(astro):
    img, p = astro
    a = align_face(img, p, 224, LEGACY_TEMPLATE)
    assert abs(_eye_angle(a.points)) < 1e-3  # the legacy fit levels the eyes exactly
    assert (a.points > 0).all() and (a.points < 224).all()
    assert a.points[17:27, 1].min() > 0.05 * 224 and a.points[8, 1] < 0.95 * 224
    assert np.abs(five_points(a.points) - LEGACY_TEMPLATE.scaled(224)).max() < 0.06 * 224


def test_reference_template_values_and_order():
    # docs/method.md §10 at 224: eyes (76.6, 103.4) and (147.1, 103.0); nose (112.1, 143.5);
    # mouth (83.1, 184.7), (141.5, 184.4); image-left eye (iBUG 36-41) first
    t = REFERENCE_TEMPLATE.scaled(224)
    np.testing.assert_allclose(t, [[76.6, 103.4], [147.1, 103.0], [112.1, 143.5], [83.1, 184.7], [141.5, 184.4]],
                               atol=0.06)
    assert not REFERENCE_TEMPLATE.level_eyes and LEGACY_TEMPLATE.level_eyes


def test_reference_fit_is_plain_least_squares(astro):
    """The reference (face.evoLVe) solves the similarity [a -b tx; b a ty] by linear least squares
    over the five points; our fit without eye levelling must be that minimiser."""
    _, p = astro
    src, dst = five_points(p).astype(np.float64), REFERENCE_TEMPLATE.scaled(224)
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    np.testing.assert_allclose(similarity(src, dst, level_eyes=False), [[a, -b, tx], [b, a, ty]], atol=1e-6)


def test_template_validation():
    with pytest.raises(AucuesError):
        AlignTemplate(((0, 0),) * 4, 112.0)
    with pytest.raises(AucuesError):
        AlignTemplate(REFERENCE_TEMPLATE.points, 0.0)
    with pytest.raises(AucuesError):
        AlignTemplate(((1.0, 1.0),) * 5, 112.0)  # eyes coincide
    with pytest.raises(AucuesError):
        align_face(np.zeros((64, 64, 3), np.uint8), np.zeros((68, 2)), 64, template="arcface")


def test_rotated_photo_is_levelled(lm, astronaut_path):
    img = read_image(astronaut_path)
    rot = cv2.getRotationMatrix2D((256, 256), 25, 1.0)
    rotated = cv2.warpAffine(img, rot, (512, 512), borderMode=cv2.BORDER_REFLECT)
    p = lm.detect(rotated)[0].points
    assert abs(_eye_angle(p)) > 15  # the face really is tilted in the input
    assert abs(_eye_angle(align_face(rotated, p).points)) < 3.0
    assert abs(_eye_angle(align_face(rotated, p, 224, LEGACY_TEMPLATE).points)) < 1e-3


def test_aligned_crop_agrees_with_redetection(lm, astro, six_faces_path):
    # The warped landmarks must sit where MediaPipe finds them again on the warped image.
    six = read_image(six_faces_path)
    cases = [astro] + [(six, f.points) for f in lm.detect(six)]
    for img, p in cases:
        for template in (REFERENCE_TEMPLATE, LEGACY_TEMPLATE):
            a = align_face(img, p, 224, template)
            again = lm.detect(a.image)
            assert len(again) >= 1
            # the reference crop cuts the chin: the jaw, guessed past the edge, is left out
            pts = slice(17, 68) if template is REFERENCE_TEMPLATE else slice(0, 68)
            err = np.linalg.norm(again[0].points[pts] - a.points[pts], axis=1).mean()
            assert err < 0.03 * 224, (template.size, err)


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

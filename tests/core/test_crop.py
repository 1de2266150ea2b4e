"""Model-chosen face framing (aucues.crop): the FER2013-style box and the five-point dispatch, on
real MediaPipe landmarks of real photos."""

from __future__ import annotations

import numpy as np
import pytest

from aucues.align import align_face, transform_points
from aucues.crop import BOX_MARGIN, box_crop, crop_face, face_box
from aucues.errors import AucuesError
from aucues.io import read_image
from aucues.preprocessing import PreprocessConfig


@pytest.fixture(scope="module")
def astro(lm, astronaut_path):
    img = read_image(astronaut_path)
    return img, lm.detect(img)[0].points


def test_box_frames_the_whole_face_upright(astro):
    img, p = astro
    f = box_crop(img, p, 64)
    assert f.image.shape == (64, 64, 3) and f.image.dtype == np.uint8
    # scale and translation only: the face stays upright, the landmarks move with the same matrix
    assert f.matrix[0, 1] == 0 and f.matrix[1, 0] == 0 and f.matrix[0, 0] == pytest.approx(f.matrix[1, 1])
    np.testing.assert_allclose(f.points, transform_points(p, f.matrix), atol=1e-4)
    # every landmark inside, brows to chin with a margin; the face spans about 1/BOX_MARGIN of the side
    assert f.points.min() > 0 and f.points.max() < 64
    span = max(np.ptp(f.points[:, 0]), np.ptp(f.points[:, 1]))
    assert 64 / BOX_MARGIN * 0.75 < span <= 64 / BOX_MARGIN + 1e-3
    # the forehead is in: more room above the brows than below the chin
    assert f.points[17:27, 1].min() > 64 - f.points[:, 1].max()
    # the crop shows the photo there (nearest pixel of the face centre agrees)
    cx, cy, side = face_box(p)
    x, y = int(round(cx)), int(round(cy))
    assert np.abs(f.image[32, 32].astype(int) - img[y, x].astype(int)).max() < 40


def test_crop_face_follows_the_preprocess_config(astro):
    img, p = astro
    five = crop_face(img, p, PreprocessConfig(image_size=80))
    np.testing.assert_array_equal(five.image, align_face(img, p, 80).image)
    box = crop_face(img, p, PreprocessConfig(image_size=48, crop="box", channels=1))
    np.testing.assert_array_equal(box.image, box_crop(img, p, 48).image)


def test_box_crop_bad_input(astro):
    img, p = astro
    with pytest.raises(AucuesError, match="missing"):
        box_crop(img, np.full((68, 2), np.nan), 64)
    with pytest.raises(AucuesError, match="68"):
        box_crop(img, p[:5], 64)
    with pytest.raises(AucuesError, match="RGB"):
        box_crop(img[..., 0], p, 64)
    with pytest.raises(AucuesError, match="empty"):
        box_crop(img, np.zeros((68, 2)), 64)

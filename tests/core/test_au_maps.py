"""AU regions and heatmaps against docs/method.md §2-4."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aucues import au_maps as A
from aucues.au_drawing import draw_overlay
from aucues.au_evidence import au_evidence
from aucues.au_maps import au_map
from aucues.au_regions import au_ellipses, au_region_masks, region_ellipses, template_points
from aucues.codebook import AU_NAMES, GENERIC_AUS, au_label, class_aus, codebook
from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

HAPPY, SURPRISE, FEAR, ANGER, DISGUST, SAD = 1, 2, 3, 4, 5, 6


@pytest.fixture()
def pts():
    return template_points(224).astype(np.float64)


def ells(p, au, size):
    return np.asarray(au_ellipses(p, au, size), dtype=np.float64)


def approx(v):
    return pytest.approx(np.asarray(v, dtype=np.float64))


def random_faces(n, size=224, seed=0):
    rng = np.random.default_rng(seed)
    base = template_points(224).astype(np.float64)
    out = []
    for _ in range(n):
        a = rng.uniform(-0.3, 0.3)
        rot = rng.uniform(0.7, 1.3) * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        p = (base - 112) @ rot.T + 112 + rng.uniform(-50, 50, 2) + rng.normal(0, 2, base.shape)
        out.append(p * size / 224)
    return out


# --- §2 codebook ------------------------------------------------------------------------------

def test_codebook_matches_paper():
    cb = codebook("paper")
    assert cb[0] == ()
    assert set(cb[HAPPY]) == {6, 12, 25}
    assert set(cb[SURPRISE]) == {1, 2, 5, 26, 27}
    assert set(cb[FEAR]) == {1, 2, 4, 5, 20, 25, 26, 27}
    assert set(cb[ANGER]) == {4, 5, 7, 10, 17, 23, 24, 25, 26}
    assert set(cb[DISGUST]) == {9, 10, 16, 17, 25, 26}
    assert set(cb[SAD]) == {1, 4, 6, 15, 17}
    assert set(codebook("reference")[DISGUST]) == {9, 5, 16, 17, 25, 26}
    assert len(GENERIC_AUS) == 20 and set(GENERIC_AUS) == set(AU_NAMES)


# --- §3 regions -------------------------------------------------------------------------------

def test_brow_regions(pts):
    pts[24, 1] += 6  # brows not level, so AU4's y axis is not zero
    x, y = pts[:, 0], pts[:, 1]
    assert ells(pts, 1, 224) == approx([(x[20], y[20], 28, 22.4), (x[23], y[23], 28, 22.4)])
    assert ells(pts, 2, 224) == approx([(x[18], y[18], 28, 22.4), (x[25], y[25], 28, 22.4)])
    (cx, cy, ax, ay), = au_ellipses(pts, 4, 224)
    # §3: centre int(mid(lm19, lm24)); signed half-differences truncated toward zero, clamped at 0
    assert (cx, cy) == (int((x[19] + x[24]) / 2), int((y[19] + y[24]) / 2))
    assert (ax, ay) == (max(int((x[24] - x[19]) / 2), 0), max(int((y[24] - y[19]) / 2), 0))


def test_au4_tilted_brow_gets_the_10px_axis(pts):
    x, y = pts[:, 0], pts[:, 1]
    pts[24, 1] = pts[19, 1] - 7  # left brow higher than the right: y24 < y19, signed half-difference < 0
    (_, _, ax, ay), = au_ellipses(pts, 4, 224)
    assert ay == 10.0 and ax == int((x[24] - x[19]) / 2)
    pts[24, 1] = pts[19, 1] + 1.5  # y24 < y19 + 2: int(0.75) = 0 -> 10 px too
    assert au_ellipses(pts, 4, 224)[0][3] == 10.0
    pts[24, 1] = pts[19, 1] + 5.0  # int(2.5) = 2
    assert au_ellipses(pts, 4, 224)[0][3] == 2.0
    assert au_ellipses(pts * 2, 4, 448)[0][3] == 4.0  # truncated in 224-crop pixels, then scaled


def test_zero_axis_rules(pts):
    p = pts.copy()
    p[24, 1] = p[19, 1]  # brows level: AU4's y axis is 0 -> 10 px
    assert au_ellipses(p, 4, 224)[0][3] == pytest.approx(10.0)
    assert au_ellipses(p * 2, 4, 448)[0][3] == pytest.approx(20.0)  # scaled with the crop
    p[41, 1] = p[38, 1]  # a closed eye: AU5's y axis -> 5 px; AU7 = box grown 10 px up and down
    assert au_ellipses(p, 5, 224)[0][3] == pytest.approx(5.0)
    assert au_ellipses(p, 7, 224)[0][3] == pytest.approx(10.0)
    p[57, 1] = p[51, 1]  # mouth box of zero height -> 5 px
    assert au_ellipses(p, 26, 224)[0][3] == pytest.approx(5.0)
    p[8, 0] = p[59, 0]  # chin box of zero width -> 5 px
    assert au_ellipses(p, 17, 224)[0][2] == pytest.approx(5.0)


def test_eye_mouth_and_circle_regions(pts):
    x, y = pts[:, 0], pts[:, 1]
    e1, e2 = au_ellipses(pts, 5, 224)
    assert e1 == pytest.approx(((x[36] + x[39]) / 2, (y[38] + y[41]) / 2,
                                abs(x[39] - x[36]) / 2, abs(y[41] - y[38]) / 2))
    assert e2 == pytest.approx(((x[42] + x[45]) / 2, (y[44] + y[47]) / 2,
                                abs(x[45] - x[42]) / 2, abs(y[47] - y[44]) / 2))
    g1, _ = au_ellipses(pts, 7, 224)
    assert g1 == pytest.approx(e1[:3] + (e1[3] + 10,))
    assert au_ellipses(pts, 43, 224) == au_ellipses(pts, 7, 224)  # identical lists
    assert ells(pts, 6, 224) == approx([(x[41], y[41] + 224 / 6, 22.4, 22.4), (x[46], y[46] + 224 / 6, 22.4, 22.4)])
    assert ells(pts, 9, 224) == approx([(x[31], y[29], 20, 20), (x[35], y[29], 20, 20)])
    assert ells(pts, 9, 112) == approx([(x[31], y[29], 10, 10), (x[35], y[29], 10, 10)])
    assert ells(pts, 10, 224) == approx([(x[48], y[50], 20, 20), (x[52], y[54], 20, 20)])
    assert au_ellipses(pts, 12, 224) == au_ellipses(pts, 15, 224)
    assert ells(pts, 12, 224) == approx([(x[48], y[48], 20, 20), (x[54], y[54], 20, 20)])
    assert ells(pts, 14, 224) == approx([(x[48] - 20, y[48], 20, 20), (x[54] + 20, y[54], 20, 20)])
    assert ells(pts, 16, 224) == approx([(x[59], y[59], 20, 20), (x[55], y[55], 20, 20)])
    assert ells(pts, 17, 224) == approx([((x[59] + x[8]) / 2, (y[59] + y[8]) / 2,
                                          abs(x[8] - x[59]) / 2, abs(y[8] - y[59]) / 2)])
    assert ells(pts, 20, 224) == approx([((x[48] + x[6]) / 2, (y[48] + y[6]) / 2, 20, 20),
                                                       ((x[50] + x[10]) / 2, (y[50] + y[10]) / 2, 20, 20)])
    mouth = [((x[48] + x[54]) / 2, (y[51] + y[57]) / 2, abs(x[54] - x[48]) / 2, abs(y[57] - y[51]) / 2)]
    for au in (23, 24, 26, 27):
        assert ells(pts, au, 224) == approx(mouth)
    assert ells(pts, 25, 224) == approx([(x[51], y[51], 25, 10), (x[57], y[57], 25, 10)])


@pytest.mark.parametrize("s", [0.5, 2.0])
def test_every_region_scales_with_the_crop(pts, s):
    for au in AU_NAMES:
        assert ells(pts * s, au, int(224 * s)) == approx([tuple(v * s for v in e) for e in au_ellipses(pts, au, 224)])


def test_region_masks_are_filled_ellipses(pts):
    masks = au_region_masks(pts, HAPPY, 224)
    assert list(masks) == list(class_aus(HAPPY))
    m = masks[12]
    assert m.dtype == bool and m.shape == (224, 224)
    # two discs of radius 20: area 2 * pi * 400 (pixel-centre sampling, a few pixels of slack)
    assert abs(int(m.sum()) - 2 * np.pi * 400) < 40
    cx, cy = pts[48]
    assert m[int(round(cy)), int(round(cx))] and not m[int(round(cy)), int(round(cx + 22))]
    assert au_region_masks(pts, 0, 224) == {}
    with pytest.raises(AucuesError):
        au_ellipses(pts, 3, 224)


# --- §4 heatmaps ------------------------------------------------------------------------------

def spec_class_map(points, label, size, variant="paper"):
    """§4 written out independently: per AU 1/1e-4 map, 28x28 (area), 3x3 box blur, back, max, min-max."""
    maps = []
    for au in class_aus(label, variant):
        mask = np.zeros((size, size), bool)
        for cx, cy, ax, ay in au_ellipses(points, au, size):
            yy, xx = np.mgrid[0:size, 0:size]
            mask |= ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        if not mask.any():
            continue
        m = np.where(mask, 1.0, 1e-4).astype(np.float32)
        m = cv2.resize(cv2.blur(cv2.resize(m, (28, 28), interpolation=cv2.INTER_AREA), (3, 3)), (size, size))
        maps.append(m)
    m = np.max(maps, axis=0)
    return (m - m.min()) / (m.max() - m.min())


@pytest.mark.parametrize("size", [224, 112, 200])
def test_class_map_follows_section_4(size):
    for i, p in enumerate(random_faces(4, size, seed=size)):
        for label in range(1, 7):
            m, ok = au_map(p, label, size)
            assert ok
            np.testing.assert_allclose(m, spec_class_map(p, label, size), atol=2e-5)


def test_map_shape_range_and_location(pts):
    m, ok = au_map(pts, HAPPY, 224)
    assert ok and m.shape == (224, 224) and m.dtype == np.float32
    assert m.min() == 0.0 and m.max() == 1.0
    cx, cy = pts[48]
    assert m[int(cy), int(cx)] > 0.8         # in the lip-corner circle (AU12)
    assert m[5, 5] == 0.0 and m[215, 110] < 0.05  # a corner, below the chin: far from every region
    assert m[int(pts[20, 1]), int(pts[20, 0])] < 0.05  # inner brow: not a Happiness AU


def test_invalid_maps(pts):
    m, ok = au_map(pts, 0, 224)
    assert not ok and m.shape == (224, 224) and not m.any()
    g, ok = au_map(pts, 0, 224, kind="generic")
    assert ok and g.max() == 1.0
    nan = pts.copy()
    nan[10] = np.nan
    for bad in (nan, None, np.full((68, 2), np.inf)):
        m, ok = au_map(bad, HAPPY, 224)
        assert not ok and not m.any()
    m, ok = au_map(pts + 1000, HAPPY, 224)  # every AU outside the crop
    assert not ok and not m.any()
    with pytest.raises(AucuesError):
        au_map(pts[:10], HAPPY, 224)
    with pytest.raises(AucuesError):
        au_map(pts, HAPPY, 224, kind="nope")
    with pytest.raises(AucuesError):
        au_map(pts, HAPPY, 224, variant="nope")


def test_au_outside_is_skipped_others_kept(pts):
    p = pts.copy()
    p[:, 1] += 150  # the brows stay in the crop, the mouth and the cheeks fall out
    m, ok = au_map(p, SAD, 224)  # AU1/AU4 in; AU6/15/17 out
    assert ok and m.max() == 1.0
    masks = au_region_masks(p, SAD, 224)
    assert masks[1].any() and not masks[15].any() and not masks[17].any()


def test_generic_and_per_class(pts):
    g, ok = au_map(pts, HAPPY, 224, kind="generic")
    assert ok and g.shape == (224, 224)
    assert g[int(pts[20, 1]), int(pts[20, 0])] > 0.8  # brows are in the generic map
    pc, ok = au_map(pts, HAPPY, 224, kind="per_class")
    assert ok and pc.shape == (len(CLASS_NAMES), 224, 224) and pc.dtype == np.float32
    assert not pc[0].any()
    for c in range(1, 7):
        np.testing.assert_array_equal(pc[c], au_map(pts, c, 224)[0])
    pc, ok = au_map(None, HAPPY, 224, kind="per_class")
    assert not ok and pc.shape == (7, 224, 224) and not pc.any()


def test_reference_codebook_disgust(pts):
    paper = au_region_masks(pts, DISGUST, 224, "paper")
    ref = au_region_masks(pts, DISGUST, 224, "reference")
    assert 10 in paper and 5 not in paper and 5 in ref and 10 not in ref
    a, _ = au_map(pts, DISGUST, 224, variant="paper")
    b, _ = au_map(pts, DISGUST, 224, variant="reference")
    eye = pts[37:39].mean(axis=0)
    # the eye (AU5) is in the reference Disgust map only; a small region keeps a lower peak once
    # smoothed on the 28x28 grid
    assert b[int(eye[1]), int(eye[0])] > 0.2 and a[int(eye[1]), int(eye[0])] < 0.02
    np.testing.assert_array_equal(au_map(pts, HAPPY, 224, variant="reference")[0], au_map(pts, HAPPY, 224)[0])


@pytest.mark.parametrize("size,jaw", [(112, False), (224, True)])
def test_landmark_map_is_max_of_gaussians(size, jaw):
    p = template_points(size).astype(np.float64)
    m, ok = au_map(p, 0, size, kind="landmarks", jaw=jaw)
    assert ok and m.shape == (size, size) and m.dtype == np.float32 and m.max() == 1.0
    sigma = 8.0 * size / 224  # covariance 64 I at 224
    q = p if jaw else p[17:]
    yy, xx = np.mgrid[0:size, 0:size]
    d2 = ((xx[None] - q[:, 0, None, None]) ** 2 + (yy[None] - q[:, 1, None, None]) ** 2).min(axis=0)
    want = np.exp(-d2 / (2 * sigma ** 2))
    want = (want - want.min()) / (want.max() - want.min())
    np.testing.assert_allclose(m, want, atol=1e-3)  # gaussians are cut at 4 sigma (< 3.4e-4)
    chin = p[8]
    assert (m[int(round(chin[1])), int(round(chin[0]))] > 0.9) == jaw


def test_landmark_map_peaks_at_points():
    p = np.round(template_points(224)).astype(np.float64)
    m, ok = au_map(p, 3, 224, kind="landmarks", jaw=True)
    assert ok
    assert np.all(m[p[:, 1].astype(int), p[:, 0].astype(int)] > 0.999)


def test_fast_path_equals_literal_path():
    for size in (224, 56, 448):
        for p in random_faces(6, size, seed=1):
            for au in AU_NAMES:
                e = tuple(region_ellipses(p, au, float(size), float(size)))
                a, b = A._smooth_literal(e, size), A._smooth_fast(e, size)
                assert (a is None) == (b is None)
                if a is None:
                    continue
                full = np.full((size, size), A.BACKGROUND, np.float32)
                y0, x0, v = b
                full[y0:y0 + v.shape[0], x0:x0 + v.shape[1]] = v
                np.testing.assert_allclose(full, a[2], atol=1e-6)


# --- evidence -----------------------------------------------------------------------------------

def test_evidence_concentrated_in_one_region(pts):
    att = au_region_masks(pts, HAPPY, 224)[6].astype(np.float32)  # all attention on the cheeks
    rows = au_evidence(att, pts, HAPPY, size=224)
    assert [r["au"] for r in rows][0] == 6 and rows[0]["share"] > 0.99
    assert rows[0]["name"] == au_label(6) == "AU6 cheek raiser"
    assert {r["au"] for r in rows} == {6, 12, 25}
    assert [r["share"] for r in rows] == sorted((r["share"] for r in rows), reverse=True)
    assert all(0.0 <= r["share"] <= 1.0 for r in rows)


def test_evidence_low_resolution_and_negative_attention(pts):
    att = np.full((28, 28), -3.0, np.float32)  # negative mass counts as 0
    cx, cy = pts[54] / 8  # a blob on the left lip corner, on the 28x28 grid of layer 5
    att[int(cy) - 1:int(cy) + 2, int(cx) - 1:int(cx) + 2] = 1.0
    rows = au_evidence(att, pts, HAPPY)
    assert rows[0]["au"] == 12 and rows[0]["share"] > 0.9
    assert au_evidence(np.zeros((7, 7)), pts, HAPPY)[0]["share"] == 0.0
    assert au_evidence(att, pts, 0) == []
    assert au_evidence(att, None, HAPPY) == []
    with pytest.raises(AucuesError):
        au_evidence(np.zeros(5), pts, HAPPY)


def test_draw_overlay(pts):
    img = np.full((224, 224, 3), 128, np.uint8)
    m, _ = au_map(pts, HAPPY, 224)
    out = draw_overlay(img, m, pts, class_aus(HAPPY))
    assert out.shape == (448, 448, 3) and out.dtype == np.uint8
    assert (out == 255).all(axis=2).any()  # white outlines were drawn

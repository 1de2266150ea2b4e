"""AU heatmaps from 68 landmarks (docs/method.md §4): class / generic / per-class / landmark maps,
built from the regions of aucues.au_regions."""

from __future__ import annotations

import math

import numpy as np

from aucues.au_regions import REF_SIZE, JAW, check_points, check_size, fill_ellipses, pixel_grid, region_ellipses
from aucues.codebook import GENERIC_AUS, class_aus
from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

SMOOTH_SIZE = 28        # §4.2: each AU map is resized to 28x28, box-blurred 3x3, resized back
BACKGROUND = 1e-4       # §4.1: value outside the regions
LANDMARK_SIGMA = 8.0    # §4 "landmarks" kind: covariance 64*I -> sigma 8 px at 224
LANDMARK_WINDOW = 4.0   # gaussians are evaluated within 4 sigma (beyond: < 3.4e-4 of the peak)
KINDS = ("class", "generic", "per_class", "landmarks")


# A smoothed single-AU map as (y0, x0, values): `values` placed at (y0, x0) in a crop that is
# BACKGROUND everywhere else (a full-crop map is (0, 0, map)).
Patch = tuple[int, int, np.ndarray]


def _smooth_literal(ells, size: int) -> Patch | None:
    """§4.1-2 as written: draw the AU on its own full map (1 inside, 1e-4 outside), resize to 28x28
    (area averaging, so small regions such as the eyes are never missed by point sampling), 3x3 box
    blur, bilinear resize back. None when the region lies wholly outside the crop (skipped)."""
    import cv2

    mask = np.zeros((size, size), dtype=bool)
    if not fill_ellipses(mask, ells):
        return None
    m = np.where(mask, np.float32(1.0), np.float32(BACKGROUND))
    small = cv2.blur(cv2.resize(m, (SMOOTH_SIZE, SMOOTH_SIZE), interpolation=cv2.INTER_AREA), (3, 3))
    return 0, 0, cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def _smooth_fast(ells, size: int) -> Patch | None:
    """The same result as _smooth_literal (to float rounding) when size is a multiple of 28, computed
    only near the region: with an integer factor f = size/28 the area resize is a mean over f x f
    blocks, and the blurred map differs from the background only one cell around the region, so the
    bilinear resize back is needed only on those cells plus one more (where it interpolates towards
    the background); cv2's edge clamping on the cut-out then sees background, as on the full map."""
    import cv2

    f = size // SMOOTH_SIZE
    px0 = max(math.floor(min(e[0] - e[2] for e in ells)), 0)
    px1 = min(math.ceil(max(e[0] + e[2] for e in ells)) + 1, size)
    py0 = max(math.floor(min(e[1] - e[3] for e in ells)), 0)
    py1 = min(math.ceil(max(e[1] + e[3] for e in ells)) + 1, size)
    if px0 >= px1 or py0 >= py1:
        return None
    c0, c1, r0, r1 = px0 // f, -(-px1 // f), py0 // f, -(-py1 // f)
    mask = np.zeros(((r1 - r0) * f, (c1 - c0) * f), dtype=bool)
    if not fill_ellipses(mask, ells, c0 * f, r0 * f):
        return None
    m = np.where(mask, np.float32(1.0), np.float32(BACKGROUND))  # §4.1 on the window only
    small = np.full((SMOOTH_SIZE, SMOOTH_SIZE), BACKGROUND, np.float32)
    small[r0:r1, c0:c1] = cv2.resize(m, (c1 - c0, r1 - r0), interpolation=cv2.INTER_AREA)  # f x f means
    small = cv2.blur(small, (3, 3))
    R0, R1 = max(r0 - 2, 0), min(r1 + 2, SMOOTH_SIZE)
    C0, C1 = max(c0 - 2, 0), min(c1 + 2, SMOOTH_SIZE)
    up = cv2.resize(np.ascontiguousarray(small[R0:R1, C0:C1]), ((C1 - C0) * f, (R1 - R0) * f),
                    interpolation=cv2.INTER_LINEAR)
    return R0 * f, C0 * f, up


def _smoothed(p: np.ndarray, aus, size: int) -> dict[int, Patch | None]:
    """AU -> its smoothed map, or None when wholly outside (§4.2). AUs sharing one region
    (23/24/26/27, 12/15, 7/43) are drawn and smoothed once."""
    smooth = _smooth_fast if size % SMOOTH_SIZE == 0 else _smooth_literal
    by_region: dict[tuple, Patch | None] = {}
    out: dict[int, Patch | None] = {}
    for au in aus:
        ells = tuple(region_ellipses(p, au, float(size), float(size)))
        if ells not in by_region:
            by_region[ells] = smooth(ells, size)
        out[au] = by_region[ells]
    return out


def _normalise(patches: list[Patch], size: int) -> tuple[np.ndarray, bool]:
    """§4.3: pixelwise max over the AUs, then min-max to [0, 1]; invalid (zeros) when no AU was drawn
    (§4.4) or the result is flat (a region covering the whole crop carries no spatial cue)."""
    if not patches:
        return np.zeros((size, size), np.float32), False
    m = np.full((size, size), BACKGROUND, np.float32)
    for y0, x0, v in {id(q): q for q in patches}.values():
        win = m[y0:y0 + v.shape[0], x0:x0 + v.shape[1]]
        np.maximum(win, v, out=win)
    return _minmax(m)


def _minmax(m: np.ndarray) -> tuple[np.ndarray, bool]:
    lo, hi = float(m.min()), float(m.max())
    if not hi - lo > 1e-12:
        return np.zeros_like(m, dtype=np.float32), False
    m -= np.float32(lo)
    m *= np.float32(1.0 / (hi - lo))
    np.clip(m, 0.0, 1.0, out=m)
    m.flat[int(m.argmax())] = 1.0  # exactly 1 despite float rounding
    return m, True


def _landmark_map(p: np.ndarray, size: int, jaw: bool) -> tuple[np.ndarray, bool]:
    """Gaussian (covariance 64*I at 224, scaled) on each landmark, pixelwise max, min-max (§4 kinds).
    max_k exp(-d_k^2 / 2s^2) = exp(-min_k d_k^2 / 2s^2): keep the nearest squared distance only."""
    s = LANDMARK_SIGMA * size / REF_SIZE
    r = LANDMARK_WINDOW * s
    d2 = np.full((size, size), LANDMARK_WINDOW ** 2, dtype=np.float32)  # in units of sigma^2
    g = pixel_grid(size)
    pts = p if jaw else p[JAW.stop:]
    hit = False
    for cx, cy in pts:
        x0, x1 = max(int(np.floor(cx - r)), 0), min(int(np.ceil(cx + r)) + 1, size)
        y0, y1 = max(int(np.floor(cy - r)), 0), min(int(np.ceil(cy + r)) + 1, size)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = (((g[x0:x1] - cx) / s) ** 2).astype(np.float32)
        dy = (((g[y0:y1] - cy) / s) ** 2).astype(np.float32)
        np.minimum(d2[y0:y1, x0:x1], dy[:, None] + dx[None, :], out=d2[y0:y1, x0:x1])
        hit = True
    if not hit:
        return np.zeros((size, size), np.float32), False
    d2 *= np.float32(-0.5)
    return _minmax(np.exp(d2))


def au_map(points68, label: int, size: int, kind: str = "class", variant: str = "paper",
           jaw: bool = False) -> tuple[np.ndarray, bool]:
    """The AU heatmap of a size x size crop and whether it is valid (docs/method.md §4).

    kind "class": AUs of `label` -> (size, size) float32 in [0, 1], max exactly 1 when valid;
    "generic": all 20 AUs (label ignored, Neutral valid); "per_class": (7, size, size), one map per
    class (Neutral channel zeros; valid when any channel is); "landmarks": a Gaussian on each landmark
    (jaw points 0-16 only with jaw=True; label ignored). Invalid maps are all zeros: Neutral (class
    kind), missing landmarks (None / NaN / inf), or every AU outside the crop."""
    size = check_size(size)
    if kind not in KINDS:
        raise AucuesError(f"unknown AU map kind '{kind}'; choose one of: {', '.join(KINDS)}")
    class_aus(0, variant)  # validates the variant name
    p = check_points(points68)
    if kind == "per_class":
        out = np.zeros((len(CLASS_NAMES), size, size), np.float32)
        if p is None:
            return out, False
        wanted = sorted({au for c in range(len(CLASS_NAMES)) for au in class_aus(c, variant)})
        sm = _smoothed(p, wanted, size)
        any_valid = False
        for c in range(len(CLASS_NAMES)):
            m, ok = _normalise([sm[a] for a in class_aus(c, variant) if sm[a] is not None], size)
            out[c] = m
            any_valid |= ok
        return out, any_valid
    if p is None:
        return np.zeros((size, size), np.float32), False
    if kind == "landmarks":
        return _landmark_map(p, size, jaw)
    aus = GENERIC_AUS if kind == "generic" else class_aus(label, variant)
    if not aus:  # Neutral (and classes outside the codebook, e.g. Contempt): no AU map, §4.4
        return np.zeros((size, size), np.float32), False
    sm = _smoothed(p, aus, size)
    return _normalise([m for m in sm.values() if m is not None], size)


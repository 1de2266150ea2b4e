"""AU regions on the 68 iBUG landmarks (docs/method.md §3): the filled ellipses of each Action Unit,
their hard masks, and a mean-face template.

Conventions: a crop is `size` x `size` pixels; pixel (row i, column j) has its centre at (x=j, y=i),
the same convention as cv2 drawing and warpAffine. Region sizes in docs/method.md §3 are for a 224 crop
and are scaled by w/224 (x) and h/224 (y), fixed pixel values included."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aucues.codebook import AU_NAMES, class_aus
from aucues.errors import AucuesError

Ellipse = tuple[float, float, float, float]  # (cx, cy, ax, ay): centre and semi-axes, axis-aligned

REF_SIZE = 224.0        # docs/method.md §3: region sizes are given for a 224x224 crop
ZERO_AXIS = 0.5         # an axis below half a pixel draws nothing: §3 "a zero axis becomes N px"
JAW = slice(0, 17)      # iBUG-68 jaw points 0-16


# A plausible mean face (iBUG-68, fractions of an aligned square crop) for tests, benchmarks and
# demos that need landmarks without a photo. Hand-placed; not any dataset's statistics.
_TEMPLATE = np.array(
    [(0.5 + 0.38 * np.cos(np.pi - k * np.pi / 16), 0.40 + 0.53 * np.sin(np.pi - k * np.pi / 16)) for k in range(17)]
    + [(0.18, 0.30), (0.24, 0.27), (0.31, 0.26), (0.38, 0.27), (0.44, 0.29),          # brow 17-21
       (0.56, 0.29), (0.62, 0.27), (0.69, 0.26), (0.76, 0.27), (0.82, 0.30),          # brow 22-26
       (0.5, 0.38), (0.5, 0.45), (0.5, 0.52), (0.5, 0.58),                            # nose 27-30
       (0.42, 0.63), (0.46, 0.645), (0.5, 0.65), (0.54, 0.645), (0.58, 0.63),         # nose 31-35
       (0.24, 0.40), (0.28, 0.375), (0.33, 0.375), (0.37, 0.40), (0.33, 0.415), (0.28, 0.415),  # eye
       (0.63, 0.40), (0.67, 0.375), (0.72, 0.375), (0.76, 0.40), (0.72, 0.415), (0.67, 0.415),  # eye
       (0.36, 0.75), (0.41, 0.72), (0.46, 0.705), (0.5, 0.71), (0.54, 0.705), (0.59, 0.72),     # lips
       (0.64, 0.75), (0.59, 0.79), (0.545, 0.805), (0.5, 0.81), (0.455, 0.805), (0.41, 0.79),
       (0.38, 0.75), (0.45, 0.735), (0.5, 0.735), (0.55, 0.735),                      # inner lips
       (0.62, 0.75), (0.55, 0.765), (0.5, 0.765), (0.45, 0.765)],
    dtype=np.float64,
)


def template_points(size: int = 224) -> np.ndarray:
    """(68, 2) float32 landmarks of a frontal mean face in a size x size aligned crop."""
    return (_TEMPLATE * size).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# Regions (docs/method.md §3)

def check_points(points68) -> np.ndarray | None:
    """(68, 2) float64 array, or None when landmarks are missing (None, NaN or inf rows)."""
    if points68 is None:
        return None
    p = np.asarray(points68, dtype=np.float64)
    if p.shape != (68, 2):
        raise AucuesError(f"landmarks must have shape (68, 2), got {p.shape}")
    if not np.isfinite(p).all():
        return None  # a failed landmarker (the reference code stores inf, we store NaN)
    return p


def _axis(value: float, fallback: float) -> float:
    # §3: "a zero axis becomes N px" (N scaled with the crop); below half a pixel nothing is drawn.
    return fallback if value < ZERO_AXIS else value


def _box(p, x0i, y0i, x1i, y1i, sx, sy, zero_px, grow_y=0.0) -> Ellipse:
    """Ellipse inscribed in the box (x[x0i], y[y0i]) - (x[x1i], y[y1i]), grown `grow_y` px up and down."""
    xa, ya, xb, yb = p[x0i, 0], p[y0i, 1], p[x1i, 0], p[y1i, 1]
    ax = _axis(abs(xb - xa) / 2.0, zero_px * sx)
    ay = _axis(abs(yb - ya) / 2.0 + grow_y * sy, zero_px * sy)
    return ((xa + xb) / 2.0, (ya + yb) / 2.0, ax, ay)


def _au4(x, y, sx: float, sy: float) -> Ellipse:
    """§3 AU4 exactly: centre int(mid(lm19, lm24)); semi-axes the signed half-differences truncated
    toward zero and clamped at 0, a 0 axis becoming 10 px. The truncation is done in 224-crop pixels
    (the reference's frame) and scaled, so the region scales exactly with the crop."""
    cx = int((x[19] + x[24]) / 2 / sx) * sx
    cy = int((y[19] + y[24]) / 2 / sy) * sy
    ax = max(int((x[24] - x[19]) / 2 / sx), 0) or 10
    ay = max(int((y[24] - y[19]) / 2 / sy), 0) or 10
    return (float(cx), float(cy), float(ax * sx), float(ay * sy))


def region_ellipses(p: np.ndarray, au: int, w: float, h: float) -> list[Ellipse]:
    sx, sy = w / REF_SIZE, h / REF_SIZE
    x, y = p[:, 0], p[:, 1]
    r20 = (20.0 * sx, 20.0 * sy)  # the "r = 20 px" circles, scaled (an ellipse if w != h)

    def at(cx, cy, ax, ay):
        return (float(cx), float(cy), float(ax), float(ay))

    if au == 1:   # inner brow raiser: lm20, lm23, semi-axes (w/8, h/10)
        return [at(x[20], y[20], w / 8, h / 10), at(x[23], y[23], w / 8, h / 10)]
    if au == 2:   # outer brow raiser: lm18, lm25
        return [at(x[18], y[18], w / 8, h / 10), at(x[25], y[25], w / 8, h / 10)]
    if au == 4:   # brow lowerer: between lm19 and lm24 (see _au4)
        return [_au4(x, y, sx, sy)]
    if au == 5:   # upper lid raiser: eye boxes (x36,y38)-(x39,y41) and (x42,y44)-(x45,y47), zero -> 5 px
        return [_box(p, 36, 38, 39, 41, sx, sy, 5), _box(p, 42, 44, 45, 47, sx, sy, 5)]
    if au in (7, 43):  # lid tightener / eyes closed: the AU5 boxes grown 10 px up and down
        return [_box(p, 36, 38, 39, 41, sx, sy, 5, 10), _box(p, 42, 44, 45, 47, sx, sy, 5, 10)]
    if au == 6:   # cheek raiser: (x41, y41 + h/6), (x46, y46 + h/6), semi-axes (w/10, h/10)
        return [at(x[41], y[41] + h / 6, w / 10, h / 10), at(x[46], y[46] + h / 6, w / 10, h / 10)]
    if au == 9:   # nose wrinkler: (x31, y29), (x35, y29)
        return [at(x[31], y[29], *r20), at(x[35], y[29], *r20)]
    if au == 10:  # upper lip raiser: (x48, y50), (x52, y54) as docs/method.md §3 gives them
        return [at(x[48], y[50], *r20), at(x[52], y[54], *r20)]
    if au in (12, 15):  # lip corner puller / depressor: lm48, lm54
        return [at(x[48], y[48], *r20), at(x[54], y[54], *r20)]
    if au == 14:  # dimpler: 20 px outside each mouth corner
        return [at(x[48] - 20 * sx, y[48], *r20), at(x[54] + 20 * sx, y[54], *r20)]
    if au == 16:  # lower lip depressor: lm59, lm55
        return [at(x[59], y[59], *r20), at(x[55], y[55], *r20)]
    if au == 17:  # chin raiser: box lm59 - lm8, zero -> 5 px
        return [_box(p, 59, 59, 8, 8, sx, sy, 5)]
    if au == 20:  # lip stretcher: mid(lm48, lm6), mid(lm50, lm10) as docs/method.md §3 gives them
        return [at((x[48] + x[6]) / 2, (y[48] + y[6]) / 2, *r20),
                at((x[50] + x[10]) / 2, (y[50] + y[10]) / 2, *r20)]
    if au in (23, 24, 26, 27):  # one mouth ellipse in the box (x48, y51) - (x54, y57), zero -> 5 px
        return [_box(p, 48, 51, 54, 57, sx, sy, 5)]
    if au == 25:  # lips part: semi-axes (25, 10) px at lm51 and lm57
        return [at(x[51], y[51], 25 * sx, 10 * sy), at(x[57], y[57], 25 * sx, 10 * sy)]
    raise AucuesError(f"unknown AU {au}; known: {', '.join(str(a) for a in AU_NAMES)}")


def check_size(size) -> int:
    s = int(size)
    if s < 1 or s != size:
        raise AucuesError(f"size must be a positive integer, got {size}")
    return s


def au_ellipses(points68, au: int, size: int) -> list[Ellipse]:
    """The filled ellipses (cx, cy, ax, ay) of one AU in a size x size crop (docs/method.md §3).
    [] when the landmarks are missing (None / NaN / inf)."""
    size = check_size(size)
    if au not in AU_NAMES:
        raise AucuesError(f"unknown AU {au}; known: {', '.join(str(a) for a in AU_NAMES)}")
    p = check_points(points68)
    return [] if p is None else region_ellipses(p, int(au), float(size), float(size))


@lru_cache(maxsize=8)
def pixel_grid(n: int) -> np.ndarray:
    """Pixel-centre coordinates 0..n-1 (precomputed once per size)."""
    c = np.arange(n, dtype=np.float64)
    c.flags.writeable = False
    return c


def fill_ellipses(mask: np.ndarray, ellipses, ox: int = 0, oy: int = 0) -> bool:
    """Fill `ellipses` (crop coordinates) into the bool `mask`, a window of the crop whose top-left
    pixel is (ox, oy); each ellipse is evaluated only over its bounding box. Returns whether any
    pixel was set (False: the region lies wholly outside the window)."""
    h, w = mask.shape
    gx, gy = pixel_grid(w), pixel_grid(h)
    for cx, cy, ax, ay in ellipses:
        cx, cy = cx - ox, cy - oy
        x0, x1 = max(math.floor(cx - ax), 0), min(math.ceil(cx + ax) + 1, w)
        y0, y1 = max(math.floor(cy - ay), 0), min(math.ceil(cy + ay) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        dx = ((gx[x0:x1] - cx) * (1.0 / ax)) ** 2
        dy = ((gy[y0:y1] - cy) * (1.0 / ay)) ** 2
        inside = np.add.outer(dy, dx) <= 1.0
        # a thin ellipse may pass between pixel centres: keep at least the centre pixel
        ci, cj = math.floor(cy + 0.5), math.floor(cx + 0.5)
        if y0 <= ci < y1 and x0 <= cj < x1:
            inside[ci - y0, cj - x0] = True
        mask[y0:y1, x0:x1] |= inside
    return bool(mask.any())


def au_region_masks(points68, label: int, size: int, variant: str = "paper") -> dict[int, np.ndarray]:
    """AU -> hard (unsmoothed) bool mask (size, size) for each AU of `label`, codebook order.
    An AU wholly outside the crop gets an all-False mask; {} for Neutral or missing landmarks."""
    size = check_size(size)
    aus = class_aus(label, variant)
    p = check_points(points68)
    if p is None or not aus:
        return {}
    out = {}
    for au in aus:
        m = np.zeros((size, size), dtype=bool)
        fill_ellipses(m, region_ellipses(p, au, float(size), float(size)))
        out[au] = m
    return out


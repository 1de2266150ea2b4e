"""AU heatmaps from 68 landmarks (docs/method.md §2-4): AU regions, class/generic/per-class/landmark
maps, and the share of a model's attention that falls inside each AU region ("evidence").

Conventions: a crop is `size` x `size` pixels; pixel (row i, column j) has its centre at (x=j, y=i),
the same convention as cv2 drawing and warpAffine. Region sizes in docs/method.md §3 are for a 224 crop
and are scaled by w/224 (x) and h/224 (y), fixed pixel values included."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from aucues.codebook import AU_NAMES, GENERIC_AUS, au_label, class_aus
from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

Ellipse = tuple[float, float, float, float]  # (cx, cy, ax, ay): centre and semi-axes, axis-aligned

REF_SIZE = 224.0        # docs/method.md §3: region sizes are given for a 224x224 crop
SMOOTH_SIZE = 28        # §4.2: each AU map is resized to 28x28, box-blurred 3x3, resized back
BACKGROUND = 1e-4       # §4.1: value outside the regions
LANDMARK_SIGMA = 8.0    # §4 "landmarks" kind: covariance 64*I -> sigma 8 px at 224
LANDMARK_WINDOW = 4.0   # gaussians are evaluated within 4 sigma (beyond: < 3.4e-4 of the peak)
ZERO_AXIS = 0.5         # an axis below half a pixel draws nothing: §3 "a zero axis becomes N px"
KINDS = ("class", "generic", "per_class", "landmarks")
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

def _check_points(points68) -> np.ndarray | None:
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


def _ellipses(p: np.ndarray, au: int, w: float, h: float) -> list[Ellipse]:
    sx, sy = w / REF_SIZE, h / REF_SIZE
    x, y = p[:, 0], p[:, 1]
    r20 = (20.0 * sx, 20.0 * sy)  # the "r = 20 px" circles, scaled (an ellipse if w != h)

    def at(cx, cy, ax, ay):
        return (float(cx), float(cy), float(ax), float(ay))

    if au == 1:   # inner brow raiser: lm20, lm23, semi-axes (w/8, h/10)
        return [at(x[20], y[20], w / 8, h / 10), at(x[23], y[23], w / 8, h / 10)]
    if au == 2:   # outer brow raiser: lm18, lm25
        return [at(x[18], y[18], w / 8, h / 10), at(x[25], y[25], w / 8, h / 10)]
    if au == 4:   # brow lowerer: between lm19 and lm24, half their x/y distance, zero axis -> 10 px
        ax = _axis(abs(x[24] - x[19]) / 2, 10 * sx)
        ay = _axis(abs(y[24] - y[19]) / 2, 10 * sy)
        return [at((x[19] + x[24]) / 2, (y[19] + y[24]) / 2, ax, ay)]
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


def _check_size(size) -> int:
    s = int(size)
    if s < 1 or s != size:
        raise AucuesError(f"size must be a positive integer, got {size}")
    return s


def au_ellipses(points68, au: int, size: int) -> list[Ellipse]:
    """The filled ellipses (cx, cy, ax, ay) of one AU in a size x size crop (docs/method.md §3).
    [] when the landmarks are missing (None / NaN / inf)."""
    size = _check_size(size)
    if au not in AU_NAMES:
        raise AucuesError(f"unknown AU {au}; known: {', '.join(str(a) for a in AU_NAMES)}")
    p = _check_points(points68)
    return [] if p is None else _ellipses(p, int(au), float(size), float(size))


@lru_cache(maxsize=8)
def _grid(n: int) -> np.ndarray:
    """Pixel-centre coordinates 0..n-1 (precomputed once per size)."""
    c = np.arange(n, dtype=np.float64)
    c.flags.writeable = False
    return c


def _draw(mask: np.ndarray, ellipses, ox: int = 0, oy: int = 0) -> bool:
    """Fill `ellipses` (crop coordinates) into the bool `mask`, a window of the crop whose top-left
    pixel is (ox, oy); each ellipse is evaluated only over its bounding box. Returns whether any
    pixel was set (False: the region lies wholly outside the window)."""
    h, w = mask.shape
    gx, gy = _grid(w), _grid(h)
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
    size = _check_size(size)
    aus = class_aus(label, variant)
    p = _check_points(points68)
    if p is None or not aus:
        return {}
    out = {}
    for au in aus:
        m = np.zeros((size, size), dtype=bool)
        _draw(m, _ellipses(p, au, float(size), float(size)))
        out[au] = m
    return out


# ---------------------------------------------------------------------------------------------------
# Heatmaps (docs/method.md §4)

# A smoothed single-AU map as (y0, x0, values): `values` placed at (y0, x0) in a crop that is
# BACKGROUND everywhere else (a full-crop map is (0, 0, map)).
Patch = tuple[int, int, np.ndarray]


def _smooth_literal(ells, size: int) -> Patch | None:
    """§4.1-2 as written: draw the AU on its own full map (1 inside, 1e-4 outside), resize to 28x28
    (area averaging, so small regions such as the eyes are never missed by point sampling), 3x3 box
    blur, bilinear resize back. None when the region lies wholly outside the crop (skipped)."""
    import cv2

    mask = np.zeros((size, size), dtype=bool)
    if not _draw(mask, ells):
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
    if not _draw(mask, ells, c0 * f, r0 * f):
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
        ells = tuple(_ellipses(p, au, float(size), float(size)))
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
    g = _grid(size)
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
    size = _check_size(size)
    if kind not in KINDS:
        raise AucuesError(f"unknown AU map kind '{kind}'; choose one of: {', '.join(KINDS)}")
    class_aus(0, variant)  # validates the variant name
    p = _check_points(points68)
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


# ---------------------------------------------------------------------------------------------------
# Evidence: how much of a model's attention lies in the expression's AU regions

def au_evidence(attention: np.ndarray, points68, label: int, variant: str = "paper",
                size: int | None = None) -> list[dict]:
    """Share of the non-negative attention mass inside each AU region of `label`, sorted descending:
    [{"au": 12, "name": "AU12 lip corner puller", "share": 0.41}, ...].

    `attention` (h, w), any size, is resized bilinearly to the crop (`size`, default the
    preprocessing image size); negative values count as 0. Regions are the hard ellipse masks before
    smoothing. Regions overlap (and AU23/24/26/27 share one), so shares need not sum to 1 nor to
    the share of their union. [] for Neutral or missing landmarks; shares are 0 for an all-zero map."""
    import cv2

    if size is None:
        from aucues.preprocessing import PreprocessConfig

        size = PreprocessConfig().image_size
    size = _check_size(size)
    att = np.asarray(attention, dtype=np.float32)
    if att.ndim != 2 or att.size == 0:
        raise AucuesError(f"attention must be a non-empty 2-D map, got shape {att.shape}")
    masks = au_region_masks(points68, label, size, variant)
    if not masks:
        return []
    att = np.nan_to_num(att, nan=0.0, posinf=0.0, neginf=0.0)
    if att.shape != (size, size):
        att = cv2.resize(att, (size, size), interpolation=cv2.INTER_LINEAR)
    att = np.maximum(att, 0.0, dtype=np.float64)
    total = float(att.sum())
    rows = []
    for au, m in masks.items():
        share = float(att[m].sum() / total) if total > 0 else 0.0
        rows.append({"au": int(au), "name": au_label(au), "share": share})
    rows.sort(key=lambda r: -r["share"])  # stable: codebook order among ties
    return rows


def draw_overlay(image: np.ndarray, heatmap: np.ndarray | None, points68, aus, alpha: float = 0.45,
                 scale: int = 2) -> np.ndarray:
    """RGB picture for people: the heatmap (jet) blended on the crop, each AU region outlined and
    labelled ("AU12"; AUs sharing one region are labelled together). Upscaled `scale` x for legibility."""
    import cv2

    img = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
    size = img.shape[0]
    if heatmap is not None and heatmap.max() > 0:
        heat = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        img = cv2.addWeighted(img, 1 - alpha, heat, alpha, 0)
    img = cv2.resize(img, (size * scale, size * scale), interpolation=cv2.INTER_CUBIC)
    p = _check_points(points68)
    if p is None:
        return img
    groups: dict[tuple, list[int]] = {}
    for au in aus:
        groups.setdefault(tuple(_ellipses(p, au, float(size), float(size))), []).append(au)
    font, fs = cv2.FONT_HERSHEY_SIMPLEX, min(0.35 * scale / 2 + 0.1, 0.6)
    placed: list[tuple[int, int, int, int]] = []   # text boxes already drawn: labels must not overlap
    for ells, group in groups.items():
        text = "AU" + "/".join(str(a) for a in group)
        (tw, th), _ = cv2.getTextSize(text, font, fs, 1)
        candidates = []
        for cx, cy, ax, ay in ells:
            c = (int(round(cx * scale)), int(round(cy * scale)))
            axes = (max(int(round(ax * scale)), 1), max(int(round(ay * scale)), 1))
            cv2.ellipse(img, c, axes, 0, 0, 360, (255, 255, 255), 1, cv2.LINE_AA)
            x = min(max(c[0] - tw // 2, 2), img.shape[1] - tw - 2)
            candidates += [(x, max(c[1] - axes[1] - 3, th + 2)), (x, min(c[1] + axes[1] + th + 3, img.shape[0] - 3))]
        free = [o for o in candidates
                if not any(o[0] < bx + bw + 4 and bx < o[0] + tw + 4 and o[1] - th < by + 6 and by - bh < o[1] + 6
                           for bx, by, bw, bh in placed)]  # +4/+6 px: the outlined glyphs and descenders
        org = (free or candidates)[0]
        placed.append((org[0], org[1], tw, th))
        cv2.putText(img, text, org, font, fs, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, org, font, fs, (255, 255, 255), 1, cv2.LINE_AA)
    return img

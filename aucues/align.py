"""5-point similarity alignment of a face to a square crop.

The template (ALIGN_TEMPLATE, fractions of the crop side, scaled by `size`) is this project's own,
not ArcFace's 112x112 one: ArcFace's template is a tight recognition crop that cuts the brows and the
chin, and the AU regions need both (AU1/AU2 sit on the brows, AU17 on the chin, docs/method.md §3).
It was derived from MediaPipe iBUG-68 faces in a frame where the eye centres sit at (0, 0) and
(1, 0): there the brows reach y ~ -0.45, the chin y ~ 1.9, the jaw x ~ -0.6 .. 1.6 (frontal), the
nose tip is at ~(0.5, 0.6) and the mouth corners at ~(0.05, 1.1) and (0.95, 1.1). A crop 3.0
inter-ocular distances wide, centred between brows and chin, keeps brows to chin with ~10% of the
side free above and below and ~15% beside a frontal jaw, so
    eye centres (1/3, 0.26) and (2/3, 0.26); nose tip (0.5, 0.46); mouth corners (0.35, 0.63), (0.65, 0.63).
The fit (`similarity`) takes its rotation from the eye line, so the eyes always come out level, and
scale and translation by least squares over the 5 points: deterministic, unlike the RANSAC/LMEDS of
cv2.estimateAffinePartial2D, and 5 good points need no outlier rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aucues.errors import AucuesError

# (x, y) as fractions of the crop side, in five_points order (image-left eye first).
ALIGN_TEMPLATE = np.array([
    [1 / 3, 0.26],   # right eye centre (iBUG 36-41, on the image's left)
    [2 / 3, 0.26],   # left eye centre (42-47)
    [0.50, 0.46],    # nose tip (30)
    [0.35, 0.63],    # right mouth corner (48)
    [0.65, 0.63],    # left mouth corner (54)
], np.float64)


@dataclass
class AlignedFace:
    image: np.ndarray    # (size, size, 3) uint8 RGB
    points: np.ndarray   # (68, 2) float32 landmarks in the aligned crop
    matrix: np.ndarray   # (2, 3) float32 similarity transform original -> crop


def _points68(points68) -> np.ndarray:
    p = np.asarray(points68, np.float64)
    if p.shape != (68, 2):
        raise AucuesError(f"expected 68 (x, y) landmarks, got shape {p.shape}")
    return p


def five_points(points68) -> np.ndarray:
    """(5, 2) float32: eye centres (36-41, 42-47), nose tip (30), mouth corners (48, 54)."""
    p = _points68(points68)
    return np.stack([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]).astype(np.float32)


def similarity(src: np.ndarray, dst: np.ndarray, level_eyes: bool = True) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) src -> dst, (2, 3) float64.

    level_eyes=True (five_points order): the rotation maps the src eye line (points 0 -> 1) onto the
    dst eye line, and only scale and translation are least-squares over all points. A plain Umeyama
    fit lets the nose and mouth of a turned head tilt the eyes by several degrees; the AU ellipses
    are axis-aligned, so level eyes matter more. level_eyes=False: Umeyama (1991), no reflection.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0 ** 2).sum()
    if var_s < 1e-12:
        raise AucuesError("degenerate landmarks: all alignment points coincide")
    if level_eyes:
        vs, vd = src[1] - src[0], dst[1] - dst[0]
        if np.hypot(*vs) < 1e-6:
            raise AucuesError("degenerate landmarks: both eye centres coincide")
        ang = np.arctan2(vd[1], vd[0]) - np.arctan2(vs[1], vs[0])
        rot = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
        scale = float((d0 * (s0 @ rot.T)).sum() / var_s)
        if scale <= 0:
            raise AucuesError("degenerate landmarks: cannot fit the alignment template")
    else:
        u, sig, vt = np.linalg.svd(d0.T @ s0)
        d = np.ones(2)
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            d[1] = -1
        rot = u @ np.diag(d) @ vt
        scale = (sig * d).sum() / var_s
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    p = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    return (p @ m[:, :2].T + m[:, 2]).astype(np.float32)


def align_face(image_rgb, points68, size: int = 224) -> AlignedFace:
    """Warp the face to a size x size crop with the 5-point template; landmarks move with it."""
    import cv2

    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise AucuesError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
    size = int(size)
    if size < 16:
        raise AucuesError(f"alignment size must be >= 16 px, got {size}")
    p = _points68(points68)
    if not np.isfinite(p).all():
        raise AucuesError("cannot align: landmarks are missing (NaN/inf)")
    m = similarity(five_points(p), ALIGN_TEMPLATE * size)
    # Shrinking a large face: INTER_AREA avoids aliasing; otherwise bilinear. Outside the photo is black.
    interp = cv2.INTER_AREA if np.sqrt(abs(np.linalg.det(m[:, :2]))) < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=interp,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return AlignedFace(image=crop, points=transform_points(p, m), matrix=m.astype(np.float32))

"""5-point similarity alignment of a face to a square crop (docs/method.md §10, docs/fidelity.md).

A template is five points (eye centres, nose tip, mouth corners, in `five_points` order: image-left
eye first) given for a square crop of side `size`, scaled to any output size, plus how the fit is
made. It is part of the model's PreprocessConfig (saved in checkpoints and ONNX metadata): a model
is always served on the crop it was trained on.

REFERENCE_TEMPLATE (the default) is the reference implementation's: the standard 112x112 five-point
template of face recognition (face.evoLVe / ArcFace), scaled by out_size / 112 (eye line at 46% of
the height, the chin mostly out of frame), fitted as the reference does: a least-squares similarity
over the five points, no eye levelling. ArcFace's "left eye" (38.29, 51.70) is the image-left one,
i.e. iBUG 36-41, our first point.

LEGACY_TEMPLATE is aucues's own earlier template, kept so that checkpoints and ONNX files written
before the template was a PreprocessConfig field are served on the crop they were trained on. It
keeps brows to chin in frame: eye centres (1/3, 0.26) and (2/3, 0.26), nose tip (0.5, 0.46), mouth
corners (0.35, 0.63), (0.65, 0.63) as fractions of the side, fitted with the rotation taken from
the eye line (eyes always level) and scale/translation by least squares.

Both fits are deterministic least squares (unlike the RANSAC/LMEDS of cv2.estimateAffinePartial2D);
5 good points need no outlier rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aucues.errors import AucuesError
from aucues.defaults import DEFAULT_IMAGE_SIZE


@dataclass(frozen=True)
class AlignTemplate:
    """Five (x, y) points for a `size` x `size` crop, and whether the fit levels the eyes."""

    points: tuple[tuple[float, float], ...]
    size: float
    level_eyes: bool = False

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, np.float64)
        if pts.shape != (5, 2) or not np.isfinite(pts).all():
            raise AucuesError(f"an alignment template needs 5 finite (x, y) points, got {self.points!r}")
        if not (isinstance(self.size, (int, float)) and not isinstance(self.size, bool)
                and np.isfinite(self.size) and self.size > 0):
            raise AucuesError(f"alignment template size must be a number > 0, got {self.size!r}")
        if np.hypot(*(pts[1] - pts[0])) < 1e-6:
            raise AucuesError("alignment template: both eye points coincide")

    def config_fields(self) -> dict:
        """As PreprocessConfig's keys (JSON-able): what a dataset records and training copies."""
        return {"align_template": [[float(x), float(y)] for x, y in self.points],
                "align_template_size": float(self.size), "align_level_eyes": bool(self.level_eyes)}

    @classmethod
    def from_config_fields(cls, d: dict) -> "AlignTemplate":
        try:
            level = d["align_level_eyes"]
            if not isinstance(level, bool):
                raise TypeError
            return cls(tuple((float(x), float(y)) for x, y in d["align_template"]),
                       float(d["align_template_size"]), level)
        except (KeyError, TypeError, ValueError):
            raise AucuesError(f"malformed alignment template record: {d!r}") from None

    def scaled(self, out_size: float) -> np.ndarray:
        """(5, 2) float64 template points in a crop of side out_size."""
        return np.asarray(self.points, np.float64) * (float(out_size) / float(self.size))


# The standard 112x112 five-point face-recognition template (face.evoLVe / ArcFace), in five_points
# order: image-left eye, image-right eye, nose tip, image-left mouth corner, image-right one.
REFERENCE_TEMPLATE = AlignTemplate(
    points=((38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366), (41.5493, 92.3655), (70.7299, 92.2041)),
    size=112.0, level_eyes=False)

# aucues's template before it became a PreprocessConfig field (fractions of the side, see above).
LEGACY_TEMPLATE = AlignTemplate(
    points=((1 / 3, 0.26), (2 / 3, 0.26), (0.50, 0.46), (0.35, 0.63), (0.65, 0.63)),
    size=1.0, level_eyes=True)


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


def check_crop_input(image_rgb, size, what: str = "alignment") -> tuple[np.ndarray, int]:
    """An RGB uint8 HxWx3 image and an output side >= 16 px, or a one-line error."""
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise AucuesError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
    size = int(size)
    if size < 16:
        raise AucuesError(f"{what} size must be >= 16 px, got {size}")
    return image, size


def warp_face(image: np.ndarray, points68, m: np.ndarray, size: int, border: str = "black") -> AlignedFace:
    """Warp by the (2, 3) similarity `m` to a size x size crop; landmarks move with it. Shrinking a
    large face uses INTER_AREA (no aliasing), else bilinear. Outside the photo: black, or the edge
    pixels repeated (border="replicate")."""
    import cv2

    interp = cv2.INTER_AREA if np.sqrt(abs(np.linalg.det(m[:, :2]))) < 1 else cv2.INTER_LINEAR
    mode = dict(borderMode=cv2.BORDER_REPLICATE) if border == "replicate" else \
        dict(borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    crop = cv2.warpAffine(np.ascontiguousarray(image), m, (size, size), flags=interp, **mode)
    return AlignedFace(image=crop, points=transform_points(points68, m), matrix=m.astype(np.float32))


def align_face(image_rgb, points68, size: int = DEFAULT_IMAGE_SIZE, template: AlignTemplate = REFERENCE_TEMPLATE) -> AlignedFace:
    """Warp the face to a size x size crop with the 5-point template; landmarks move with it.
    Pass the model's template (`PreprocessConfig.template`): the default is only the default."""
    image, size = check_crop_input(image_rgb, size)
    p = _points68(points68)
    if not np.isfinite(p).all():
        raise AucuesError("cannot align: landmarks are missing (NaN/inf)")
    if not isinstance(template, AlignTemplate):
        raise AucuesError(f"template must be an AlignTemplate, got {type(template).__name__}")
    m = similarity(five_points(p), template.scaled(size), level_eyes=template.level_eyes)
    return warp_face(image, p, m, size)

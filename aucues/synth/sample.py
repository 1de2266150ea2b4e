"""One synthetic sample: a face of a class in a random pose/identity/look, its 68 deformed landmarks,
and a class-coded distractor placed in an image corner clear of every generic AU region."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aucues.align import REFERENCE_TEMPLATE, AlignTemplate, five_points, similarity
from aucues.au_regions import au_ellipses
from aucues.codebook import GENERIC_AUS
from aucues.synth.face import FaceGeometry, expression, identity, mean_identity
from aucues.synth.render import Painter, background, draw_distractor, draw_face, photometric, random_look

SPLIT_CODES = {"train": 0, "test": 1}
# Framing: the mean neutral face's five alignment points (aucues.align.five_points) are fitted to the
# alignment template (PreprocessConfig.template, the model's crop) with the template's own fit, and
# each sample's pose is jittered around that fit. A synthetic image is thus already an aligned crop
# in the frame the model trains and is served on (MediaPipe landmarks -> align_face with the same
# template is close to the identity). With the reference template the chin reaches the bottom edge,
# as on the reference's real crops; landmarks may leave the image there.
POSE_ANGLE_DEG = 8.0   # rotation jitter, degrees
POSE_SCALE = 0.08      # relative scale jitter
POSE_SHIFT = (0.04, 0.03)  # translation jitter (x, y) as fractions of the side
DISTRACTOR_R = 0.06    # distractor half-size as a fraction of the image side
CLEARANCE = 0.04       # extra gap kept from AU ellipses and the face hull (fraction of the side);
                       # covers the 28x28 smoothing of AU maps that spreads regions a little


@dataclass
class Sample:
    image: np.ndarray          # (size, size, 3) uint8 RGB
    points: np.ndarray         # (68, 2) float32 landmarks in pixels (deformed face)
    box: np.ndarray            # (4,) float32 face box x0, y0, x1, y1
    distractor: dict | None    # {"class", "shape", "box"} or None when not drawn


def sample_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of one sample: depends on (seed, split, index) only, so any subset of samples
    can be rendered in any order with the same bytes."""
    return np.random.default_rng([int(seed), SPLIT_CODES[split], int(index)])


def generic_ellipses(points: np.ndarray, size: int) -> list[tuple[float, float, float, float]]:
    """Every ellipse of the 20 generic AUs (docs/method.md §3) of these landmarks."""
    out = []
    for au in GENERIC_AUS:
        out.extend(au_ellipses(points, au, size))
    return out


def box_clear(box, ellipses, hull: np.ndarray, margin: float) -> bool:
    """Whether the box (x0, y0, x1, y1) stays `margin` px away from every ellipse and from the hull."""
    x0, y0, x1, y1 = box
    for cx, cy, ax, ay in ellipses:
        # nearest box point to the ellipse centre, tested against the grown ellipse
        nx, ny = min(max(cx, x0), x1), min(max(cy, y0), y1)
        if ((nx - cx) / (ax + margin)) ** 2 + ((ny - cy) / (ay + margin)) ** 2 <= 1.0:
            return False
    corners = [(x0, y0), (x1, y0), (x0, y1), (x1, y1), ((x0 + x1) / 2, (y0 + y1) / 2)]
    for x, y in corners:  # the hull is convex: a box clear of it has all corners outside by margin
        if cv2.pointPolygonTest(hull, (float(x), float(y)), True) > -margin:
            return False
    return True


def _place(points: np.ndarray, size: int, rng: np.random.Generator) -> tuple[float, float, float, str] | None:
    r = DISTRACTOR_R * size * float(rng.uniform(0.9, 1.1))
    inset = size * float(rng.uniform(0.015, 0.05)) + r
    ells = generic_ellipses(points, size)
    hull = cv2.convexHull(points.astype(np.float32))
    margin = CLEARANCE * size
    names = ("top_left", "top_right", "bottom_left", "bottom_right")
    for k in rng.permutation(4):
        cx = inset if k % 2 == 0 else size - inset
        cy = inset if k < 2 else size - inset
        if box_clear((cx - r, cy - r, cx + r, cy + r), ells, hull, margin):
            return cx, cy, r, names[k]
    return None


def template_pose(template: AlignTemplate, size: int) -> tuple[float, float, tuple[float, float]]:
    """(scale px per face unit, angle rad, origin px) that puts the mean neutral face's five points
    on the template scaled to `size`."""
    neutral = FaceGeometry(mean_identity(), expression(0, 1.0, np.random.default_rng(0))).landmarks()
    m = similarity(five_points(neutral), template.scaled(size), level_eyes=template.level_eyes)
    scale = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    return scale, float(np.arctan2(m[1, 0], m[0, 0])), (float(m[0, 2]), float(m[1, 2]))


def render_sample(seed: int, split: str, index: int, label: int, distractor_class: int | None,
                  size: int = 128, variant: str = "paper", template: AlignTemplate = REFERENCE_TEMPLATE) -> Sample:
    rng = sample_rng(seed, split, index)
    ident, look = identity(rng), random_look(rng)
    intensity = float(rng.uniform(0.85, 1.1))
    geom = FaceGeometry(ident, expression(label, intensity, rng, variant))
    face_pts = geom.landmarks()
    scale0, angle0, (ox, oy) = template_pose(template, size)
    angle = angle0 + np.radians(rng.uniform(-POSE_ANGLE_DEG, POSE_ANGLE_DEG))
    scale = scale0 * float(rng.uniform(1 - POSE_SCALE, 1 + POSE_SCALE))
    origin = (ox + size * rng.uniform(-POSE_SHIFT[0], POSE_SHIFT[0]), oy + size * rng.uniform(-POSE_SHIFT[1], POSE_SHIFT[1]))
    draw_rng = np.random.default_rng(rng.integers(2 ** 63))
    place_seed = int(rng.integers(2 ** 63))
    # Shrink the face (at most 11 x 5%) only when no corner is free of AU regions for the distractor;
    # landmarks past the bottom edge are allowed (the chin, in the reference frame).
    for attempt in range(12):
        pts = Painter(None, scale, angle, origin).px(face_pts)
        placed = _place(pts, size, np.random.default_rng(place_seed)) if distractor_class is not None else None
        if placed is not None or distractor_class is None:
            break
        if attempt < 11:
            scale *= 0.95
    img = background(size, draw_rng)
    pt = Painter(img, scale, angle, origin)
    draw_face(pt, geom, look)
    info = None
    if distractor_class is not None and placed is not None:
        cx, cy, r, corner = placed
        draw_distractor(img, int(distractor_class), cx, cy, r)
        info = {"class": int(distractor_class), "corner": corner,
                "box": [round(cx - r, 2), round(cy - r, 2), round(cx + r, 2), round(cy + r, 2)]}
    img = photometric(img, draw_rng)
    pts = pts.astype(np.float32)
    box = np.array([*pts.min(0), *pts.max(0)], np.float32)
    return Sample(image=img, points=pts, box=box, distractor=info)

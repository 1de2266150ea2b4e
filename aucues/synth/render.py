"""Drawing one synthetic face (OpenCV, anti-aliased, sub-pixel) from a FaceGeometry, plus the
class-coded distractor and the photometric jitter. Colours are RGB."""

from __future__ import annotations

import cv2
import numpy as np

from aucues.synth.face import FaceGeometry

SHIFT = 4                      # cv2 fixed-point bits: coordinates are drawn at 1/16 px
ONE = 1 << SHIFT
AA = cv2.LINE_AA

SKIN_TONES = np.array([(255, 224, 196), (241, 194, 167), (224, 172, 138), (198, 134, 100),
                       (161, 102, 70), (120, 76, 50), (92, 58, 40)], np.float64)
HAIR_TONES = np.array([(20, 16, 14), (60, 40, 25), (110, 72, 40), (200, 160, 90), (150, 60, 30),
                       (160, 160, 160)], np.float64)

# Distractor kind per class index: (shape, RGB colour). Shape AND colour both encode the class.
DISTRACTOR_KINDS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("circle", (230, 30, 30)), ("square", (30, 190, 40)), ("triangle", (30, 70, 235)),
    ("diamond", (245, 205, 10)), ("plus", (210, 30, 210)), ("ring", (10, 205, 215)),
    ("hourglass", (250, 125, 10)),
)


def _mix(a, b, t: float) -> tuple[float, float, float]:
    t = float(np.clip(t, 0.0, 1.0))
    return tuple(float(x) for x in (np.asarray(a, np.float64) * (1 - t) + np.asarray(b, np.float64) * t))


class Painter:
    """Face space -> image pixels (similarity transform) and the drawing primitives."""

    def __init__(self, img: np.ndarray, scale: float, angle: float, origin) -> None:
        self.img, self.s = img, scale
        c, s = np.cos(angle), np.sin(angle)
        self.m = scale * np.array([[c, -s], [s, c]])
        self.t = np.asarray(origin, np.float64)

    def px(self, pts) -> np.ndarray:
        return np.asarray(pts, np.float64).reshape(-1, 2) @ self.m.T + self.t

    def _fx(self, pts) -> np.ndarray:
        return np.round(self.px(pts) * ONE).astype(np.int32)

    def th(self, units: float) -> int:
        return max(1, int(round(units * self.s)))

    def poly(self, pts, color) -> None:
        cv2.fillPoly(self.img, [self._fx(pts)], color, AA, SHIFT)

    def line(self, pts, color, units: float = 0.02, closed: bool = False) -> None:
        cv2.polylines(self.img, [self._fx(pts)], closed, color, self.th(units), AA, SHIFT)

    def ellipse(self, centre, axes, color, angle_deg: float = 0.0, thickness: int = -1) -> None:
        c = self._fx(centre)[0]
        ax = (int(round(axes[0] * self.s * ONE)), int(round(axes[1] * self.s * ONE)))
        rot = np.degrees(np.arctan2(self.m[1, 0], self.m[0, 0])) + angle_deg
        cv2.ellipse(self.img, (int(c[0]), int(c[1])), ax, rot, 0, 360, color, thickness, AA, SHIFT)


def _arc(cx, cy, ax, ay, a0, a1, n=20) -> np.ndarray:
    a = np.linspace(a0, a1, n)
    return np.stack([cx + ax * np.cos(a), cy + ay * np.sin(a)], 1)


def _band(curve: np.ndarray, half: np.ndarray) -> np.ndarray:
    """A filled stroke around `curve` whose half-thickness varies along it."""
    return np.concatenate([curve - np.c_[np.zeros_like(half), half], (curve + np.c_[np.zeros_like(half), half])[::-1]])


def draw_face(pt: Painter, g: FaceGeometry, look: dict) -> None:
    """Everything but the background and the distractor, back to front."""
    p, e = g.p, g.e
    skin, dark = look["skin"], _mix(look["skin"], (40, 20, 15), 0.45)
    hair = look["hair"]
    # shoulders, neck, hair behind the head, ears
    pt.ellipse((0, g.chin_y + 1.35), (2.1, 0.9), look["shirt"])
    pt.poly([(-0.40, 0.5), (0.40, 0.5), (0.46, g.chin_y + 0.7), (-0.46, g.chin_y + 0.7)], _mix(skin, (0, 0, 0), 0.15))
    if look["long_hair"]:
        back = np.concatenate([_arc(0, p["jaw_top"], p["fw"] * 1.22, p["head_h"] * 1.1, np.pi, 2 * np.pi),
                               [(p["fw"] * 1.22, p["chin"] * 0.85), (-p["fw"] * 1.22, p["chin"] * 0.85)]])
        pt.poly(back, hair)
    for sx in (-1, 1):
        pt.ellipse((sx * p["fw"] * 0.97, 0.2), (0.11, 0.2), _mix(skin, (0, 0, 0), 0.08))
    # face: jaw + skull
    outline = np.concatenate([g.jaw, g.head[1:-1]])
    pt.poly(outline, skin)
    pt.line(outline, dark, 0.015, closed=True)
    # hair cap down to a hairline over the forehead
    hl = -p["brow_gap"] - p["hairline"]
    a = np.linspace(0, np.pi, 21)
    hairline = np.stack([np.cos(a) * p["fw"] * 1.0, hl + (p["jaw_top"] - 0.15 - hl) * np.abs(np.cos(a)) ** 2.5], 1)
    cap = np.concatenate([_arc(0, p["jaw_top"] + 0.02, p["fw"] * 1.07, p["head_h"] * 1.08, np.pi * 1.03, -0.03 * np.pi + 2 * np.pi),
                          hairline])
    pt.poly(cap, hair)

    # AU6 cheek bulge: shaded, raised cheeks under the eyes
    if e["cheek"] > 0.05:
        for sx in (-1, 1):
            pt.ellipse((sx * p["eye_dx"], 0.30), (0.19, 0.11), _mix(skin, (200, 70, 70), 0.35 * min(e["cheek"], 1.2)))
            pt.line(_arc(sx * p["eye_dx"], 0.12, 0.15, 0.06, 0.15 * np.pi, 0.85 * np.pi, 9), _mix(skin, dark, 0.8 * e["cheek"]), 0.012)
    # nasolabial folds deepen with a smile (AU12/AU6)
    fold = max(e["corner"] / 0.13, 0.0)
    if fold > 0.1:
        m = g.mouth
        for sx in (-1, 1):
            pts = [(sx * (p["nose_w"] + 0.04), g.nose_base - 0.06), (sx * (p["nose_w"] + 0.13), g.nose_base + 0.08),
                   (sx * (m["mw"] + 0.06), m["cy"] + 0.06)]
            pt.line(pts, _mix(skin, dark, fold), 0.018)
    # forehead wrinkles when brows are raised (AU1/AU2)
    raise_ = e["brow_in"] + e["brow_out"]
    if raise_ > 0.08:
        for k in range(3):
            y = -p["brow_gap"] - 0.2 - 0.09 * k - 0.5 * max(e["brow_in"], 0)
            pt.line(_arc(0, y + 0.25, 0.35, 0.25, 1.2 * np.pi, 1.8 * np.pi, 12), _mix(skin, dark, min(raise_ / 0.25, 1) * 0.8), 0.012)
    # AU4 furrow between the brows
    if e["furrow"] > 0.1:
        by = float(g.brow_r[-1, 1])
        for sx in (-1, 1):
            pt.line([(sx * 0.035, by - 0.01), (sx * 0.045, by + 0.13)], _mix(skin, dark, min(e["furrow"], 1.2)), 0.018)
    # brows: tapered bands
    f = np.linspace(0, 1, len(g.brow_r))
    half = p["brow_th"] * (0.55 + 0.45 * np.sin(np.pi * (0.2 + 0.6 * f)))
    brow_col = _mix(hair, (0, 0, 0), 0.3)
    pt.poly(_band(g.brow_r, half), brow_col)
    pt.poly(_band(g.brow_l, half), brow_col)
    for up, lo, c in ((g.eye_r_up, g.eye_r_lo, g.eye_r_c), (g.eye_l_up, g.eye_l_lo, g.eye_l_c)):
        _draw_eye(pt, up, lo, c, p, look, dark)
    # nose: base arc, nostrils, bridge shadow; AU9 wrinkles across the bridge
    pt.line(g.nose_arc, dark, 0.015)
    for sx in (-1, 1):
        pt.ellipse((sx * p["nose_w"] * 0.5, g.nose_base - 0.005), (0.035, 0.016), _mix(skin, (30, 10, 10), 0.7))
        pt.line([(sx * 0.06, 0.06), (sx * 0.08, g.nose_tip - 0.02)], _mix(skin, dark, 0.35), 0.012)
    if e["nose_wrinkle"] > 0.1:
        wc = _mix(skin, dark, min(e["nose_wrinkle"] * 1.1, 1))
        for k in range(3):
            y = 0.10 + 0.07 * k
            pt.line(_arc(0, y + 0.05, 0.10, 0.05, 1.15 * np.pi, 1.85 * np.pi, 9), wc, 0.016)
        for sx in (-1, 1):
            pt.line([(sx * (p["nose_w"] + 0.01), g.nose_base - 0.1), (sx * (p["nose_w"] + 0.08), g.nose_base - 0.2)], wc, 0.016)
    _draw_mouth(pt, g, look, dark)
    # AU17 chin raiser: chin boss and the crease under the lower lip
    if e["chin_raise"] > 0.1:
        m = g.mouth
        cy = m["il"] + m["tl"] + 0.09
        pt.ellipse((0, (cy + g.chin_y) / 2), (0.17, 0.09), _mix(skin, (255, 255, 255), 0.12 * e["chin_raise"]))
        pt.line(_arc(0, cy - 0.05, 0.13, 0.05, 0.1 * np.pi, 0.9 * np.pi, 11), _mix(skin, dark, min(e["chin_raise"], 1)), 0.018)


def _draw_eye(pt: Painter, up, lo, centre, p, look, dark) -> None:
    contour = np.concatenate([up, lo[::-1][1:-1]])
    pt.poly(contour, look["sclera"])
    # iris + pupil, clipped to the eye opening through a small ROI mask
    cpx = pt.px(contour)
    x0, y0 = np.floor(cpx.min(0)).astype(int) - 1
    x1, y1 = np.ceil(cpx.max(0)).astype(int) + 2
    h, w = pt.img.shape[:2]
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 - x0 >= 2 and y1 - y0 >= 2:
        roi = pt.img[y0:y1, x0:x1]
        sub = Painter(roi.copy(), pt.s, 0.0, (0, 0))
        sub.m, sub.t = pt.m, pt.t - (x0, y0)
        sub.ellipse(centre, (p["iris"], p["iris"]), look["iris"])
        sub.ellipse(centre, (p["iris"] * 0.45, p["iris"] * 0.45), (15, 10, 10))
        mask = np.zeros(roi.shape[:2], np.uint8)
        cv2.fillPoly(mask, [np.round((cpx - (x0, y0)) * ONE).astype(np.int32)], 255, AA, SHIFT)
        a = (mask.astype(np.float32) / 255.0)[..., None]
        roi[:] = (sub.img * a + roi * (1 - a) + 0.5).astype(np.uint8)
    pt.line(up, (25, 15, 15), 0.025)
    pt.line(lo, dark, 0.012)


def _draw_mouth(pt: Painter, g: FaceGeometry, look, dark) -> None:
    m = g.mouth
    lips = np.concatenate([g.lip_ou, g.lip_ol[::-1][1:-1]])
    pt.poly(lips, look["lips"])
    if g.mouth_open:
        inner = np.concatenate([g.lip_iu, g.lip_il[::-1][1:-1]])
        pt.poly(inner, (45, 12, 18))
        gap = m["il"] - m["iu"]
        if gap < 0.17:  # a moderately open mouth shows the upper teeth; the tall O of surprise is dark
            tooth = min(0.045, 0.5 * gap)
            low = np.minimum(g.lip_iu[:, 1] + tooth, g.lip_il[:, 1])
            teeth = np.concatenate([g.lip_iu, np.stack([g.lip_iu[:, 0], low], 1)[::-1]])
            pt.poly(teeth, (240, 236, 225))
            pt.line(g.lip_iu, _mix(look["lips"], (0, 0, 0), 0.3), 0.012)
    else:
        mid = (g.lip_iu + g.lip_il) / 2
        mid = np.concatenate([g.lip_ou[:1], mid, g.lip_ou[-1:]])
        pt.line(mid, _mix(look["lips"], (0, 0, 0), 0.5), 0.018)


def draw_distractor(img: np.ndarray, cls: int, cx: float, cy: float, r: float) -> None:
    """A small filled shape of class `cls`'s kind, centred at (cx, cy), half-size r (pixels)."""
    kind, col = DISTRACTOR_KINDS[cls]
    c = np.array([cx, cy])

    def fx(pts):
        return [np.round((c + np.asarray(pts, np.float64) * r) * ONE).astype(np.int32)]

    if kind == "circle":
        cv2.circle(img, tuple(int(v) for v in np.round(c * ONE)), int(r * ONE), col, -1, AA, SHIFT)
    elif kind == "ring":
        cv2.circle(img, tuple(int(v) for v in np.round(c * ONE)), int(r * 0.72 * ONE), col, max(1, int(round(r * 0.5))), AA, SHIFT)
    elif kind == "square":
        cv2.fillPoly(img, fx([(-0.85, -0.85), (0.85, -0.85), (0.85, 0.85), (-0.85, 0.85)]), col, AA, SHIFT)
    elif kind == "triangle":
        cv2.fillPoly(img, fx([(0, -1), (0.95, 0.8), (-0.95, 0.8)]), col, AA, SHIFT)
    elif kind == "diamond":
        cv2.fillPoly(img, fx([(0, -1), (1, 0), (0, 1), (-1, 0)]), col, AA, SHIFT)
    elif kind == "plus":
        cv2.fillPoly(img, fx([(-0.3, -1), (0.3, -1), (0.3, -0.3), (1, -0.3), (1, 0.3), (0.3, 0.3), (0.3, 1),
                              (-0.3, 1), (-0.3, 0.3), (-1, 0.3), (-1, -0.3), (-0.3, -0.3)]), col, AA, SHIFT)
    else:  # hourglass
        cv2.fillPoly(img, fx([(-0.9, -1), (0.9, -1), (0, 0)]), col, AA, SHIFT)
        cv2.fillPoly(img, fx([(-0.9, 1), (0.9, 1), (0, 0)]), col, AA, SHIFT)


def background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A linear two-colour gradient in a random direction."""
    c0, c1 = rng.uniform(20, 235, 3).astype(np.float32), rng.uniform(20, 235, 3).astype(np.float32)
    a = rng.uniform(0, 2 * np.pi)
    g = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    t = np.clip(0.5 + np.float32(np.cos(a)) * g[None, :] + np.float32(np.sin(a)) * g[:, None], 0, 1)[..., None]
    return (c0 + (c1 - c0) * t).astype(np.uint8)


def photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild blur (half the samples), contrast/brightness/colour cast, gaussian noise."""
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.4, 0.9)))
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
    bias = rng.uniform(-15, 15) + rng.uniform(-6, 6, 3)
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(1.0, 5.0))
    out = img.astype(np.float32) * gain.astype(np.float32) + bias.astype(np.float32) + noise
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def random_look(rng: np.random.Generator) -> dict:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.uniform(-12, 12, 3)
    hair = HAIR_TONES[rng.integers(len(HAIR_TONES))] + rng.uniform(-10, 10, 3)
    clip = lambda v: tuple(float(x) for x in np.clip(v, 0, 255))  # noqa: E731
    return {
        "skin": clip(skin), "hair": clip(hair),
        "lips": clip(skin * 0.55 + np.array([150, 40, 50]) * 0.45 + rng.uniform(-10, 10, 3)),
        "iris": clip(rng.choice([(70, 45, 25), (40, 90, 140), (60, 110, 60), (110, 80, 40)]) + rng.uniform(-10, 10, 3)),
        "sclera": clip(np.array([245, 243, 238]) + rng.uniform(-10, 5, 3)),
        "shirt": clip(rng.uniform(20, 235, 3)),
        "long_hair": bool(rng.random() < 0.4),
    }

"""A parametric cartoon face: identity parameters, AU-driven expression state, and the dense
contours that are both drawn and sampled into the 68 iBUG landmarks.

Face space: x to the image's right, y down, origin between the eyes at eye level, the face's
half-width is about 1. Landmarks are samples of the very curves that get drawn, so an AU region
computed from the saved (deformed) landmarks falls on the deformed part of the picture.
"""

from __future__ import annotations

import numpy as np

from aucues.codebook import codebook

# How strongly each class shows each of its AUs (1 = the AU's full effect below). The codebook
# decides WHICH AUs a class has; these weights only shape a readable, distinct face per class
# (e.g. Fear's mouth is stretched wide, Surprise's is a tall O; Anger keeps lips pressed).
CLASS_AU_WEIGHTS: dict[int, dict[int, float]] = {
    1: {6: 1.0, 12: 1.0, 25: 1.0},                                            # Happiness
    2: {1: 1.0, 2: 1.0, 5: 1.0, 26: 1.0, 27: 1.0},                            # Surprise
    3: {1: 1.0, 2: 0.5, 4: 0.7, 5: 1.0, 20: 1.0, 25: 1.0, 26: 0.5, 27: 0.2},  # Fear
    4: {4: 1.4, 5: 0.4, 7: 1.0, 10: 0.3, 17: 0.9, 23: 1.0, 24: 1.0, 25: 0.15, 26: 0.1},  # Anger
    5: {9: 1.0, 10: 1.0, 16: 0.9, 17: 0.5, 25: 0.7, 26: 0.3},                 # Disgust
    6: {1: 1.3, 4: 0.7, 6: 0.4, 15: 1.0, 17: 0.9},                            # Sadness
}

EXPRESSION_KEYS = (
    "brow_in", "brow_out", "brow_pinch", "furrow", "eye_open", "lid_tight", "lower_lid_raise",
    "cheek", "nose_wrinkle", "upper_lip_raise", "corner", "mouth_stretch", "lip_thin", "open",
    "jaw_drop", "lower_lip_down", "chin_raise",
)


def _apply_au(e: dict[str, float], au: int, k: float) -> None:
    """The visible effect of one AU at intensity k (face-space units)."""
    if au == 1:
        e["brow_in"] += 0.14 * k
    elif au == 2:
        e["brow_out"] += 0.14 * k
    elif au == 4:
        e["brow_in"] -= 0.10 * k
        e["brow_out"] -= 0.03 * k
        e["brow_pinch"] += 0.05 * k
        e["furrow"] += k
    elif au == 5:
        e["eye_open"] += 0.06 * k
    elif au == 6:
        e["cheek"] += k
        e["lower_lid_raise"] += 0.02 * k
    elif au in (7, 43):
        e["lid_tight"] += (0.5 if au == 7 else 0.9) * k
    elif au == 9:
        e["nose_wrinkle"] += k
        e["upper_lip_raise"] += 0.02 * k
        e["lower_lid_raise"] += 0.015 * k
    elif au == 10:
        e["upper_lip_raise"] += 0.06 * k
    elif au == 12:
        e["corner"] += 0.14 * k
        e["mouth_stretch"] += 0.06 * k
    elif au == 15:
        e["corner"] -= 0.11 * k
    elif au == 16:
        e["lower_lip_down"] += 0.05 * k
    elif au == 17:
        e["chin_raise"] += k
    elif au == 20:
        e["mouth_stretch"] += 0.12 * k
    elif au == 23:
        e["lip_thin"] += 0.45 * k
        e["mouth_stretch"] -= 0.03 * k
    elif au == 24:
        e["lip_thin"] += 0.35 * k
    elif au == 25:
        e["open"] += 0.05 * k
    elif au == 26:
        e["open"] += 0.09 * k
        e["jaw_drop"] += 0.08 * k
    elif au == 27:
        e["open"] += 0.14 * k
        e["jaw_drop"] += 0.10 * k
        e["mouth_stretch"] -= 0.08 * k
    # AU14 and others not used by any class are ignored.


def expression(label: int, intensity: float, rng: np.random.Generator, variant: str = "paper") -> dict[str, float]:
    """Expression state of a class: its codebook AUs, weighted, at `intensity` (+-10% per AU)."""
    e = {k: 0.0 for k in EXPRESSION_KEYS}
    aus = codebook(variant).get(int(label), ())
    weights = CLASS_AU_WEIGHTS.get(int(label), {})
    for au in aus:
        _apply_au(e, au, weights.get(au, 1.0) * intensity * float(rng.uniform(0.9, 1.1)))
    e["lid_tight"] = min(e["lid_tight"], 0.9)
    e["lip_thin"] = min(e["lip_thin"], 0.8)
    return e


def identity(rng: np.random.Generator) -> dict[str, float]:
    """Face-shape parameters of one synthetic person."""
    u = rng.uniform
    return {
        "fw": u(0.92, 1.06), "chin": u(1.22, 1.40), "jaw_top": u(0.02, 0.10), "head_h": u(1.35, 1.55),
        "eye_dx": u(0.36, 0.44), "eye_hw": u(0.15, 0.185), "eye_h": u(0.065, 0.085),
        "eye_lo": u(0.045, 0.06), "iris": u(0.06, 0.075), "gaze": u(-0.02, 0.02),
        "brow_gap": u(0.24, 0.30), "brow_arch": u(0.03, 0.06), "brow_th": u(0.035, 0.055),
        "nose_len": u(0.42, 0.50), "nose_w": u(0.13, 0.17),
        "mouth_y": u(0.80, 0.88), "mouth_hw": u(0.30, 0.37), "lip_up": u(0.045, 0.07),
        "lip_lo": u(0.065, 0.09), "hairline": u(0.50, 0.70),
    }


def _curve(c: float, e: float, f: np.ndarray, p: float = 2.0) -> np.ndarray:
    """y along a lip from the centre value c (f=0) to the corner value e (|f|=1)."""
    return c + (e - c) * np.abs(f) ** p


class FaceGeometry:
    """Dense contours (face space) of one face with one expression, and its 68 landmarks."""

    def __init__(self, ident: dict[str, float], expr: dict[str, float]) -> None:
        p, e = ident, expr
        self.p, self.e = p, e
        n = 24
        # Jaw: lower half of an ellipse narrowed toward the chin; jaw drop moves the chin most.
        t = np.linspace(0, np.pi, n * 2 + 1)
        s = np.sin(t)
        chin = p["chin"] + e["jaw_drop"] - 0.03 * e["chin_raise"]
        jx = -np.cos(t) * p["fw"] * (1 - 0.10 * s ** 2)
        jy = p["jaw_top"] + (chin - p["jaw_top"]) * s
        self.jaw = np.stack([jx, jy], 1)
        # Head top (forehead/skull) closes the face outline from the right temple over to the left.
        a = np.linspace(0, np.pi, n + 1)
        self.head = np.stack([np.cos(a) * p["fw"], p["jaw_top"] - np.sin(a) * p["head_h"]], 1)

        # Brows, right one (image left) from outer (f=0) to inner end (f=1).
        f = np.linspace(0, 1, 13)
        xo, xi = -(p["eye_dx"] + p["eye_hw"] + 0.06), -max(0.05, 0.13 - e["brow_pinch"])
        yo = -p["brow_gap"] + 0.02 - e["brow_out"]
        yi = -p["brow_gap"] - e["brow_in"]
        arch = p["brow_arch"] + 0.25 * max(e["brow_out"], 0)
        self.brow_r = np.stack([xo + (xi - xo) * f, yo + (yi - yo) * f - arch * np.sin(np.pi * (0.15 + 0.7 * f))], 1)
        self.brow_l = self.brow_r * [-1, 1]

        # Eyes: upper and lower lids as arcs between the corners.
        up = max(0.012, (p["eye_h"] + e["eye_open"]) * (1 - e["lid_tight"]))
        lo = max(0.01, p["eye_lo"] * (1 - 0.5 * e["lid_tight"]) - e["lower_lid_raise"] + 0.3 * e["eye_open"])
        self.lid_up, self.lid_lo = up, lo
        g = np.linspace(-1, 1, 15)
        cx = -p["eye_dx"]
        ex = cx + g * p["eye_hw"]
        self.eye_r_up = np.stack([ex, -up * np.cos(g * np.pi / 2) ** 0.8], 1)
        self.eye_r_lo = np.stack([ex, lo * np.cos(g * np.pi / 2) ** 0.9], 1)
        self.eye_l_up = self.eye_r_up[::-1] * [-1, 1]
        self.eye_l_lo = self.eye_r_lo[::-1] * [-1, 1]
        self.eye_r_c = np.array([cx + p["gaze"], 0.0])
        self.eye_l_c = np.array([-cx + p["gaze"], 0.0])

        # Nose: bridge, tip, nostril base (a wrinkled nose pulls the tip up a little).
        tip = p["nose_len"] - 0.03 * e["nose_wrinkle"]
        nb = tip + 0.09
        self.nose_tip, self.nose_base = tip, nb
        nx = np.linspace(-1, 1, 15)
        self.nose_arc = np.stack([nx * p["nose_w"], nb - 0.03 + 0.04 * np.cos(nx * np.pi / 2)], 1)

        # Mouth: centre line, corners lifted (+) or dropped (-), opening split between the lips.
        my, mw = p["mouth_y"], max(0.18, p["mouth_hw"] + e["mouth_stretch"])
        cy = my - e["corner"]
        o = e["open"]
        iu = my - 0.25 * o - e["upper_lip_raise"]
        il = my + 0.75 * o + e["lower_lip_down"] - 0.02 * e["chin_raise"]
        il = max(il, iu)
        tu = max(0.015, p["lip_up"] * (1 - e["lip_thin"]))
        tl = max(0.015, p["lip_lo"] * (1 - e["lip_thin"]))
        self.mouth = dict(my=my, mw=mw, cy=cy, iu=iu, il=il, tu=tu, tl=tl)
        self.mouth_open = il - iu > 0.012
        fm = np.linspace(-1, 1, 25)
        bow = 0.012 * np.exp(-((np.abs(fm) - 0.25) / 0.12) ** 2)  # cupid's bow
        self.lip_ou = np.stack([fm * mw, _curve(iu - tu, cy, fm) - bow], 1)
        self.lip_ol = np.stack([fm * mw, _curve(il + tl, cy, fm, 1.8)], 1)
        fi = fm * 0.88
        self.lip_iu = np.stack([fi * mw, _curve(iu, cy, fm)], 1)
        self.lip_il = np.stack([fi * mw, _curve(il, cy, fm)], 1)
        self.chin_y = chin

    # --- landmarks -------------------------------------------------------------------------
    def landmarks(self) -> np.ndarray:
        """(68, 2) iBUG-68 points in face space."""
        pts = np.zeros((68, 2), np.float64)
        pts[0:17] = self.jaw[::3]
        pts[17:22] = self.brow_r[::3]
        # 22 = left inner end ... 26 = left outer end (mirror of 21..17)
        pts[22:27] = (self.brow_r[::3][::-1]) * [-1, 1]
        p = self.p
        pts[27:31] = np.stack([np.zeros(4), np.linspace(0.02, self.nose_tip, 4)], 1)
        nw = p["nose_w"]
        pts[31:36] = [[-nw, self.nose_base - 0.03], [-nw / 2, self.nose_base], [0, self.nose_base + 0.01],
                      [nw / 2, self.nose_base], [nw, self.nose_base - 0.03]]
        up, lo = self.eye_r_up, self.eye_r_lo
        right = [up[0], up[4], up[10], up[14], lo[10], lo[4]]        # 36..41
        pts[36:42] = right
        pts[42:48] = [r * [-1, 1] for r in (right[3], right[2], right[1], right[0], right[5], right[4])]
        ou, ol, iu, il = self.lip_ou, self.lip_ol, self.lip_iu, self.lip_il
        pts[48:55] = ou[[0, 5, 9, 12, 15, 19, 24]]                     # 48 corner .. 54 corner
        pts[55:60] = ol[[19, 15, 12, 9, 5]]                            # 55 .. 59 (right to left)
        pts[60:65] = [(iu[0] + il[0]) / 2, iu[7], iu[12], iu[17], (iu[24] + il[24]) / 2]
        pts[65:68] = il[[17, 12, 7]]
        return pts

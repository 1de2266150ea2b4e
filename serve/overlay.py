"""Overlay pictures for `aucues predict --overlays`: the aligned face with the predicted class's CAM
and the layer attention side by side, the class's AU regions outlined, label, probability and the
AUs holding most attention written on it."""

from __future__ import annotations

import math

import numpy as np

PANEL_MIN = 320   # px: small model inputs (e.g. 96) are upscaled so the text stays legible


def _text(img, s: str, org, scale: float = 0.5, color=(255, 255, 255)) -> None:
    import cv2

    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def render_overlay(face: np.ndarray, cam: np.ndarray, attention: np.ndarray, landmarks: np.ndarray,
                   result: dict, class_index: int, variant: str = "paper", layer: int = 5) -> np.ndarray:
    """RGB uint8 picture. `face` (S,S,3) aligned crop, `cam`/`attention` (S,S) in [0,1], `landmarks`
    (68,2) in the crop, `result` the JSON result (label, probabilities, au_evidence, score)."""
    from aucues.au_drawing import draw_overlay
    from aucues.codebook import class_aus

    size = face.shape[0]
    scale = max(1, math.ceil(PANEL_MIN / size))
    aus = class_aus(class_index, variant)
    panels = []
    for title, heat in (("CAM" if cam is not None else "no CAM (this model has none)", cam),
                        (f"attention (layer {layer})", attention)):
        heat = np.zeros(face.shape[:2], np.float32) if heat is None else np.asarray(heat, np.float32)
        p = draw_overlay(face, heat, landmarks, aus, scale=scale)
        _text(p, title, (6, p.shape[0] - 8), 0.5)
        panels.append(p)
    body = np.hstack([panels[0], np.full((panels[0].shape[0], 4, 3), 255, np.uint8), panels[1]])
    w = body.shape[1]
    label = result["label"]
    prob = result["probabilities"].get(label, float("nan"))
    score = result.get("interpretability_score")
    header = np.full((34, w, 3), 32, np.uint8)
    line = f"{label}  p={prob:.2f}"
    line += f"   AU alignment {score:.2f}" if score is not None else "   (no AU map for this class)"
    _text(header, line, (8, 23), 0.6)
    ev = result.get("au_evidence") or []
    footer = np.full((22 * max(1, min(3, len(ev))) + 8, w, 3), 32, np.uint8)
    if ev:
        for i, r in enumerate(ev[:3]):
            _text(footer, f"{r['name']}: {r['share']:.0%} of attention", (8, 20 + 22 * i), 0.5)
    else:
        _text(footer, "no AU evidence (Neutral has no Action Units)", (8, 20), 0.5)
    return np.vstack([header, body, footer])

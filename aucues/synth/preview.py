"""A contact sheet of a synth output: a few samples per class with landmarks and the distractor box."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from aucues.errors import AucuesError
from aucues.io import read_image, write_image
from aucues.labels import CLASS_NAMES
from aucues.landmark_cache import LandmarkCache
from aucues.synth.dataset import CACHE, META_NAME, is_synth_output

TILE = 192  # preview tile side (px); the images are upscaled to it


def preview_grid(out_dir, path, per_class: int = 6, split: str = "train", landmarks: bool = True) -> Path:
    """Write a PNG: one row per class (label at the left), `per_class` samples each, landmarks in
    green and the distractor's box in white (green box when it encodes the true class)."""
    out = Path(out_dir)
    if not is_synth_output(out):
        raise AucuesError(f"{out}: not a synth output (no {META_NAME})")
    meta = json.loads((out / META_NAME).read_text(encoding="utf-8"))
    cache = LandmarkCache(out / CACHE, readonly=True)
    label_w = 110
    rows = []
    for c, name in enumerate(CLASS_NAMES):
        chosen = [s for s in meta.get("samples", []) if s["label"] == c and s["split"] == split][:per_class]
        row = np.full((TILE, label_w + TILE * per_class, 3), 255, np.uint8)
        cv2.putText(row, name, (6, TILE // 2 + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        for j, s in enumerate(chosen):
            img = read_image(out / s["image"])
            k = TILE / img.shape[1]
            tile = cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_CUBIC)
            if landmarks and s["image"] in cache:
                for x, y in cache.points(s["image"]):
                    cv2.circle(tile, (int(round(x * k)), int(round(y * k))), 1, (0, 255, 0), -1, cv2.LINE_AA)
            if s.get("distractor_box"):
                x0, y0, x1, y1 = (int(round(v * k)) for v in s["distractor_box"])
                col = (0, 200, 0) if s["distractor_true"] else (255, 255, 255)
                cv2.rectangle(tile, (x0 - 2, y0 - 2), (x1 + 2, y1 + 2), col, 1, cv2.LINE_AA)
            row[:, label_w + j * TILE: label_w + (j + 1) * TILE] = tile
        rows.append(row)
    sheet = np.concatenate(rows, 0)
    p = Path(path)
    if p.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise AucuesError(f"{p}: the preview must be a .png or .jpg file")
    write_image(p, sheet)
    return p

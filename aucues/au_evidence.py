"""Evidence: the share of a model's attention that falls inside each AU region of an expression."""

from __future__ import annotations

import numpy as np

from aucues.au_regions import au_region_masks, check_size
from aucues.codebook import au_label
from aucues.errors import AucuesError

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
    size = check_size(size)
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


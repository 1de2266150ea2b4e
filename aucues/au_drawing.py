"""Pictures for people: an AU heatmap blended on a face crop with the AU regions outlined and labelled."""

from __future__ import annotations

import numpy as np

from aucues.au_regions import check_points, region_ellipses


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
    p = check_points(points68)
    if p is None:
        return img
    groups: dict[tuple, list[int]] = {}
    for au in aus:
        groups.setdefault(tuple(region_ellipses(p, au, float(size), float(size))), []).append(au)
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

"""Face framing chosen by the model: `PreprocessConfig.crop` says how a detected face becomes the
model's square input, and every caller (serving pipeline, evaluation on raw photos, demo) goes
through `crop_face` so the framing is never re-typed.

- "five_point": aucues.align.align_face with the model's alignment template
  (PreprocessConfig.template: by default the reference's, docs/method.md §10).
- "box": a loose, upright square box like the faces FER2013 models were trained on. FER2013's
  faces were found by a face detector and framed as boxes (no rotation, no landmark alignment);
  the `fer` package reproduces that with a Haar-cascade box squared and widened by a fixed margin.
  Here the box comes from the 68 landmarks instead: their bounding box, raised by BOX_FOREHEAD of
  the brow-to-chin height (a detector box reaches into the forehead, landmarks stop at the brows),
  squared on its longer side and widened by BOX_MARGIN (Haar box + fer's 10 px offsets on a
  ~100 px face). Scale and translation only, so the landmarks move with the same matrix and the AU
  maps (docs/method.md §3) are drawn on the crop the model sees.
"""

from __future__ import annotations

import numpy as np

from aucues.align import AlignedFace, align_face, check_crop_input, warp_face
from aucues.errors import AucuesError

BOX_FOREHEAD = 0.2
BOX_MARGIN = 1.2
CROPS = ("five_point", "box")


def face_box(points68) -> tuple[float, float, float]:
    """(centre x, centre y, side) of the square "box" framing in image pixels."""
    p = np.asarray(points68, np.float64)
    if p.shape != (68, 2):
        raise AucuesError(f"expected 68 (x, y) landmarks, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise AucuesError("cannot crop: landmarks are missing (NaN/inf)")
    x0, x1 = p[:, 0].min(), p[:, 0].max()
    y1 = p[:, 1].max()
    y0 = p[:, 1].min()
    y0 -= BOX_FOREHEAD * (y1 - y0)
    side = BOX_MARGIN * max(x1 - x0, y1 - y0)
    if side < 1e-3:
        raise AucuesError("degenerate landmarks: the face box is empty")
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def box_crop(image_rgb, points68, size: int) -> AlignedFace:
    """The upright square face box resized to size x size; landmarks move with it."""
    image, size = check_crop_input(image_rgb, size, "crop")
    cx, cy, side = face_box(points68)
    s = size / side
    m = np.array([[s, 0.0, size / 2 - s * cx], [0.0, s, size / 2 - s * cy]])
    # Outside the photo: the edge pixels repeated (fer pads with a flat grey; FER2013 has no black bars)
    return warp_face(image, points68, m, size, border="replicate")


def crop_face(image_rgb, points68, preprocess) -> AlignedFace:
    """The face framed as `preprocess.crop` says, at `preprocess.image_size`."""
    kind = getattr(preprocess, "crop", "five_point")
    if kind == "box":
        return box_crop(image_rgb, points68, preprocess.image_size)
    if kind == "five_point":
        return align_face(image_rgb, points68, preprocess.image_size, preprocess.template)
    raise AucuesError(f"unknown crop {kind!r}; expected one of {', '.join(CROPS)}")

"""Warps between images and network inputs, as MediaPipe's ImageToTensor / LandmarkProjection do.

A region is (centre, side, rotation) in image pixels. Its warp maps the square's corners onto the
input's corners (MediaPipe builds the matrix from the corner points, so pixel u of an S-px input sits
at u / S of the region's width, no half-pixel shift), samples bilinearly (uint8, as MediaPipe warps
before converting to float) and fills outside pixels with a constant or the replicated edge.
"""

from __future__ import annotations

import numpy as np

# Face mesh ROI from a short-range detection (FaceDetectionFrontDetectionToRoi): rotation from the
# right eye (keypoint 0) to the left eye (keypoint 1) brought to horizontal, the box made square on
# its long side and enlarged 1.5x.
ROI_SCALE = 1.5
MESH_SIZE = 192


def region_matrix(cx: float, cy: float, side: float, rotation: float, size: int) -> np.ndarray:
    """2x3 affine: input pixel (u, v) of a size x size tensor -> image pixel."""
    c, s = np.cos(rotation), np.sin(rotation)
    k = side / size
    rot = np.array([[c, -s], [s, c]]) * k
    t = np.array([cx, cy]) - rot @ np.array([size / 2, size / 2])
    return np.hstack([rot, t[:, None]])


def warp(image: np.ndarray, m: np.ndarray, size: int, replicate: bool = False) -> np.ndarray:
    import cv2

    border = cv2.BORDER_REPLICATE if replicate else cv2.BORDER_CONSTANT
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=border, borderValue=(0, 0, 0))


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Points (..., 2) through the 2x3 affine m."""
    return pts @ m[:, :2].T + m[:, 2]


def mesh_roi(box: np.ndarray, kps: np.ndarray) -> tuple[float, float, float, float]:
    """(cx, cy, side, rotation) of the mesh's ROI for one detection in image pixels."""
    (x0, y0), (x1, y1) = kps[0], kps[1]
    rot = -np.arctan2(-(y1 - y0), x1 - x0)
    rot = rot - 2 * np.pi * np.floor((rot + np.pi) / (2 * np.pi))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * ROI_SCALE
    return float(cx), float(cy), float(side), float(rot)

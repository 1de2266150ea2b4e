"""BlazeFace post-processing as MediaPipe 0.10.21's face detection graphs do it (docs/onnx_landmarks.md).

- SSD anchors (SsdAnchorsCalculator with fixed_anchor_size: only the centres matter, w = h = 1):
  short range: 128x128 input, layers with strides 8, 16, 16, 16 and 2 anchors per layer and cell
  (aspect ratio 1 + the interpolated scale) -> 16*16*2 + 8*8*6 = 896 anchors;
  full range: 192x192 input, one layer of stride 4, one anchor per cell -> 48*48 = 2304 anchors.
- Decoding (TensorsToDetectionsCalculator, reverse_output_order): each row is x_centre, y_centre,
  w, h, then 6 keypoints (x, y), as offsets in input pixels from the anchor centre; the score is
  sigmoid(clip(logit, -100, 100)) and rows below the minimum score (0.5) are dropped.
- Weighted NMS (NonMaxSuppressionCalculator, WEIGHTED, IoU > 0.3): the best-scoring detection
  absorbs every detection overlapping it by more than the threshold; box and keypoints become the
  score-weighted mean of the group, the score stays the best one's.
Everything here is in detector-input pixels; the caller maps back through its warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetectorSpec:
    model: str          # aucues.onnx_landmarks.models name
    size: int           # square input side (px)
    strides: tuple[int, ...]
    anchors_per_layer: int  # per cell and layer: aspect ratio 1.0 (+1 for the interpolated scale)


SHORT_RANGE = DetectorSpec("face_detection_short_range", 128, (8, 16, 16, 16), 2)
FULL_RANGE = DetectorSpec("face_detection_full_range", 192, (4,), 1)
MIN_SCORE = 0.5
NMS_IOU = 0.3
NUM_KEYPOINTS = 6


def anchors(spec: DetectorSpec) -> np.ndarray:
    """(A, 2) anchor centres in [0, 1], in the order of the model's output rows."""
    out = []
    i = 0
    while i < len(spec.strides):
        j, per_cell = i, 0
        while j < len(spec.strides) and spec.strides[j] == spec.strides[i]:  # equal strides share a grid
            per_cell += spec.anchors_per_layer
            j += 1
        n = -(-spec.size // spec.strides[i])
        ys, xs = np.meshgrid((np.arange(n) + 0.5) / n, (np.arange(n) + 0.5) / n, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(grid, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchor_xy: np.ndarray, size: int,
           min_score: float = MIN_SCORE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's outputs (A, 16), (A, 1) -> boxes (K, 4) x0 y0 x1 y1, keypoints (K, 6, 2) and
    scores (K,), in input pixels, for the rows scoring >= min_score."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores[:, 0].astype(np.float64), -100.0, 100.0)))
    keep = np.nonzero(scores >= min_score)[0]
    r = raw_boxes[keep].astype(np.float64)
    a = anchor_xy[keep].astype(np.float64) * size  # anchor w = h = 1 (fixed size): offsets are in px
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:4 + 2 * NUM_KEYPOINTS].reshape(-1, NUM_KEYPOINTS, 2) + a[:, None, :]
    return boxes, kps, scores[keep]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, kps: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU):
    """MediaPipe's weighted NMS; detections best first, as (boxes, keypoints, scores)."""
    order = np.argsort(-scores, kind="stable")
    out_b, out_k, out_s = [], [], []
    while order.size:
        top = order[0]
        sim = _iou(boxes[top], boxes[order])
        group, order = order[sim > iou], order[sim <= iou]
        if group.size == 0:  # a degenerate (empty) box overlaps nothing, not even itself
            group, order = np.array([top]), order[order != top]
        wts = scores[group][:, None]
        out_b.append((boxes[group] * wts).sum(0) / wts.sum())
        out_k.append((kps[group] * wts[:, :, None]).sum(0) / wts.sum())
        out_s.append(scores[top])
    if not out_s:
        return np.zeros((0, 4)), np.zeros((0, NUM_KEYPOINTS, 2)), np.zeros(0)
    return np.array(out_b), np.array(out_k), np.array(out_s)

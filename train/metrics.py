"""Interpretability (docs/method.md §7) and classification metrics.

- `map_cosine`: ATT-COS / CAM-COS of one batch: each predicted map (attention or CAM) upsampled
  bilinearly to the AU map's size, clamped to its own min/max, shifted by -min when its min is
  negative, then cosine with the AU map (eps 1e-8; NaN counts 0).
- `InterpretabilityMeter`: per-class averages over valid samples; `mean()` is the unweighted mean
  over the expression classes (Neutral excluded).
- `classification_report`: accuracy, macro F1, per-class accuracy, confusion matrix."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aucues.errors import AucuesError
from aucues.labels import CLASS_NAMES

EPS = 1e-8


def map_cosine(pred: Tensor, target: Tensor, attention: bool = False) -> Tensor:
    """pred (N, h, w), target (N, H, W) -> (N,) cosine similarities (float32).

    attention=True is ATT-COS (upsampling bilinear, antialiased, align_corners=True); False is
    CAM-COS (bilinear, align_corners=False, as the CAM of §6) (docs/method.md §7)."""
    pred, target = torch.as_tensor(pred), torch.as_tensor(target)
    if pred.ndim != 3 or target.ndim != 3 or pred.shape[0] != target.shape[0]:
        raise AucuesError(f"map_cosine needs (N, h, w) and (N, H, W) maps, got {tuple(pred.shape)} and {tuple(target.shape)}")
    pred = pred.detach().float()
    target = target.detach().float().to(pred.device)
    lo = pred.flatten(1).min(1).values[:, None, None]
    hi = pred.flatten(1).max(1).values[:, None, None]
    if pred.shape[-2:] != target.shape[-2:]:
        pred = F.interpolate(pred[:, None], size=target.shape[-2:], mode="bilinear",
                             align_corners=attention, antialias=attention)[:, 0]
    pred = torch.maximum(torch.minimum(pred, hi), lo)
    pred = pred - torch.clamp(lo, max=0.0)  # shift by -min only where min < 0
    cos = F.cosine_similarity(pred.flatten(1), target.flatten(1), dim=1, eps=EPS)
    return torch.nan_to_num(cos, nan=0.0)


class InterpretabilityMeter:
    """Accumulates per-sample cosines by true class; invalid samples are ignored."""

    def __init__(self, class_names: tuple[str, ...] = CLASS_NAMES, excluded: tuple[str, ...] = ("Neutral",)):
        self.class_names = tuple(class_names)
        self.excluded = tuple(excluded)
        self.reset()

    def reset(self) -> None:
        self._sum = [0.0] * len(self.class_names)
        self._count = [0] * len(self.class_names)

    def update(self, per_sample_cos, labels, valid=None) -> None:
        cos = torch.as_tensor(per_sample_cos).detach().reshape(-1).double().cpu()
        labels = torch.as_tensor(labels).detach().reshape(-1).long().cpu()
        valid = torch.ones_like(labels, dtype=torch.bool) if valid is None else \
            torch.as_tensor(valid).detach().reshape(-1).bool().cpu()
        if not cos.shape == labels.shape == valid.shape:
            raise AucuesError(f"meter update: {cos.numel()} cosines, {labels.numel()} labels, {valid.numel()} flags")
        cos = torch.nan_to_num(cos, nan=0.0)
        for c, y, v in zip(cos.tolist(), labels.tolist(), valid.tolist()):
            if not v:
                continue
            if not 0 <= y < len(self.class_names):
                raise AucuesError(f"label {y} out of range 0..{len(self.class_names) - 1}")
            self._sum[y] += c
            self._count[y] += 1

    def counts(self) -> dict[str, int]:
        return {n: k for n, k in zip(self.class_names, self._count)}

    def per_class(self) -> dict[str, float]:
        """Class name -> mean cosine, for every class with at least one valid sample."""
        return {n: s / k for n, s, k in zip(self.class_names, self._sum, self._count) if k}

    def mean(self, reference: bool = False) -> float:
        """Unweighted mean over the non-excluded classes that had samples; NaN when there were none.
        reference=True scores a class without any valid map as -1, as the reference code does (§7)."""
        if reference:
            pc = self.per_class()
            vals = [pc.get(n, -1.0) for n in self.class_names if n not in self.excluded]
            return sum(vals) / len(vals) if vals else math.nan
        vals = [v for n, v in self.per_class().items() if n not in self.excluded]
        return sum(vals) / len(vals) if vals else math.nan


def classification_report(preds, labels, num_classes: int) -> dict:
    """accuracy (float), macro_f1 (mean F1 over the classes present in labels or preds, as
    scikit-learn does), per_class_accuracy (list, recall per class; None for a class without
    samples), confusion_matrix (list of lists, rows = true class, columns = predicted)."""
    preds = torch.as_tensor(preds).detach().reshape(-1).long().cpu()
    labels = torch.as_tensor(labels).detach().reshape(-1).long().cpu()
    if preds.shape != labels.shape:
        raise AucuesError(f"{preds.numel()} predictions for {labels.numel()} labels")
    for name, t in (("prediction", preds), ("label", labels)):
        if t.numel() and (t.min() < 0 or t.max() >= num_classes):
            raise AucuesError(f"{name} outside 0..{num_classes - 1}")
    cm = torch.bincount(labels * num_classes + preds, minlength=num_classes * num_classes)
    cm = cm.reshape(num_classes, num_classes)
    tp = cm.diag().double()
    support = cm.sum(1).double()
    predicted = cm.sum(0).double()
    per_class = [None if support[c] == 0 else float(tp[c] / support[c]) for c in range(num_classes)]
    f1 = []
    for c in range(num_classes):
        if support[c] == 0 and predicted[c] == 0:
            continue
        denom = support[c] + predicted[c]
        f1.append(float(2 * tp[c] / denom))
    total = int(labels.numel())
    return {
        "accuracy": float(tp.sum() / total) if total else math.nan,
        "macro_f1": sum(f1) / len(f1) if f1 else math.nan,
        "per_class_accuracy": per_class,
        "confusion_matrix": cm.tolist(),
    }

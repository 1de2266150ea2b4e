"""CutMix (Yun et al. 2019), docs/method.md §12: a WGAP model trained on mixed batches.

With probability `prob`, one box per batch (area share 1 - lam, lam ~ Beta(beta, beta), centre
uniform, clipped to the image) is pasted from a shuffled copy of the batch. The AU maps are mixed
with the same box (in relative coordinates, so maps at another resolution get the same region) and
a mixed map is valid when either source map was valid and something of it remains (invalid maps
count as empty). The CE is weighted by the actual areas: lam * CE(y) + (1 - lam) * CE(y_shuffled).
Random numbers come from torch's global RNG, which the trainer reseeds per epoch (resumable)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from aucues.train.methods.base import Method, Opt, register_method


def sample_box(beta: float) -> tuple[float, float, float, float]:
    """(y0, y1, x0, x1) in relative [0, 1] coordinates (Beta(beta, beta) area share, uniform centre)."""
    lam = float(torch.distributions.Beta(beta, beta).sample()) if beta != 1.0 else float(torch.rand(()))
    cut = math.sqrt(1.0 - lam)
    cy, cx = float(torch.rand(())), float(torch.rand(()))
    return (max(cy - cut / 2, 0.0), min(cy + cut / 2, 1.0), max(cx - cut / 2, 0.0), min(cx + cut / 2, 1.0))


def _pixels(box, h: int, w: int) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = box
    return int(round(y0 * h)), int(round(y1 * h)), int(round(x0 * w)), int(round(x1 * w))


def paste(t: Tensor, src: Tensor, box) -> Tensor:
    """t with the box region (relative coords) replaced by src's; last two dims are spatial."""
    y0, y1, x0, x1 = _pixels(box, *t.shape[-2:])
    out = t.clone()
    out[..., y0:y1, x0:x1] = src[..., y0:y1, x0:x1]
    return out


def cutmix_batch(x: Tensor, au_map: Tensor, valid: Tensor, beta: float):
    """-> (mixed images, mixed maps, mixed valid flags, permutation, lam: the area share of the originals,
    box: relative (y0, y1, x0, x1))."""
    n = x.shape[0]
    perm = torch.randperm(n, device=x.device)
    box = sample_box(beta)
    y0, y1, x0, x1 = _pixels(box, *x.shape[-2:])
    lam = 1.0 - (y1 - y0) * (x1 - x0) / float(x.shape[-2] * x.shape[-1])
    x_mix = paste(x, x[perm], box)
    maps = au_map * valid.reshape(-1, *([1] * (au_map.ndim - 1))).to(au_map.dtype)  # invalid: empty
    m_mix = paste(maps, maps[perm], box)
    v_mix = (valid | valid[perm]) & (m_mix.flatten(1).amax(1) > 1e-3)
    return x_mix, m_mix, v_mix, perm, lam, box


@register_method
class CutMix(Method):
    name = "cutmix"
    options = {"beta": Opt(float, 1.0, 0.0, 100.0, lo_open=True), "prob": Opt(float, 1.0, 0.0, 1.0)}

    def step_loss(self, model, criterion, x, y, au_map, valid, opts):
        if x.shape[0] < 2 or not bool(torch.rand(()) < opts["prob"]):
            return super().step_loss(model, criterion, x, y, au_map, valid, opts)
        x_mix, m_mix, v_mix, perm, lam, _ = cutmix_batch(x, au_map, valid, opts["beta"])
        out = model(x_mix)
        parts = criterion(out, y, m_mix, v_mix)
        ce = lam * parts.ce + (1.0 - lam) * F.cross_entropy(out.logits, y[perm])
        return type(parts)(parts.total - parts.ce + ce, ce, parts.align)

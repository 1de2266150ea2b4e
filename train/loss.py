"""The composite loss of docs/method.md §5: cross-entropy + lambda * layer-attention / AU-map alignment.

    L = CE(logits, y) + lam * mean_l [ mean_{valid n} (1 - cos(vec T_l[n], vec A_l[n])) ]

T_l is the raw channel mean of layer l (or, with random_avg p < 1, the mean over a random
p-fraction of channels drawn per sample and per call from torch's RNG); A_l is the AU map
downsampled to T_l's size (bilinear, antialiased, align_corners=True) and clamped to the map's own previous min/max.
Samples whose map is invalid (Neutral, failed landmarks) get the CE term only."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.preprocessing import LAYERS

EPS = 1e-8


class LossParts(NamedTuple):
    total: Tensor  # what to backpropagate
    ce: Tensor
    align: Tensor  # the un-weighted alignment term (0 when disabled or no valid sample)


def resize_map(au_map: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, H, W) -> (N, h, w): bilinear + antialias + align_corners=True, clamped to each map's own
    pre-resize min/max (docs/method.md §5)."""
    if tuple(au_map.shape[-2:]) == tuple(size):
        return au_map
    flat = au_map.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    small = F.interpolate(au_map[:, None], size=size, mode="bilinear", antialias=True, align_corners=True)[:, 0]
    return torch.maximum(torch.minimum(small, hi[:, None, None]), lo[:, None, None])


def random_channel_mean(features: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """docs/method.md §5 random_avg: each channel kept with probability p (Bernoulli, per sample,
    per call, so the count varies); the mean of the kept channels. p = 1 is the plain mean. A sample
    that draws no channel at all falls back to the plain mean (nothing else is defined)."""
    n, c = features.shape[:2]
    if p >= 1.0:
        return features.mean(1)
    keep = (torch.rand(n, c, generator=generator, device=features.device) < p).to(features.dtype)
    none = keep.sum(1) == 0
    keep[none] = 1.0
    weights = keep / keep.sum(1, keepdim=True)
    return torch.einsum("nc,nchw->nhw", weights, features)


class AUAlignmentLoss(nn.Module):
    def __init__(self, layers=(5,), lam: float = 9.0, random_avg_p: float = 1.0, enabled: bool = True):
        super().__init__()
        self.layers = tuple(sorted(set(int(l) for l in ((layers,) if isinstance(layers, int) else layers))))
        if not self.layers or any(l not in LAYERS for l in self.layers):
            raise AucuesError(f"alignment layers must be among 1..5, got {layers!r}")
        if not lam >= 0:
            raise AucuesError(f"lambda must be >= 0, got {lam}")
        if not 0.0 < random_avg_p <= 1.0:
            raise AucuesError(f"random_avg fraction p must be in (0, 1], got {random_avg_p}")
        self.lam = float(lam)
        self.random_avg_p = float(random_avg_p)
        self.enabled = bool(enabled)

    def extra_repr(self) -> str:
        return f"layers={self.layers}, lam={self.lam}, random_avg_p={self.random_avg_p}, enabled={self.enabled}"

    def attention(self, out, layer: int) -> Tensor:
        if self.random_avg_p < 1.0:
            if layer not in out.features:
                raise AucuesError(f"layer {layer} is not among the model's attention_layers {tuple(out.features)}")
            return random_channel_mean(out.features[layer], self.random_avg_p)
        if layer not in out.attentions:
            raise AucuesError(f"layer {layer} is not among the model's attention_layers {tuple(out.attentions)}")
        return out.attentions[layer]

    def forward(self, out, target: Tensor, au_map: Tensor, valid: Tensor) -> LossParts:
        ce = F.cross_entropy(out.logits, target)
        if not self.enabled:
            zero = ce.new_zeros(())
            return LossParts(ce, ce, zero)
        valid = valid.to(device=out.logits.device, dtype=torch.bool).reshape(-1)
        if au_map.ndim == 4 and au_map.shape[1] == 1:  # (N, 1, H, W) from image-style pipelines
            au_map = au_map[:, 0]
        if au_map.ndim != 3 or au_map.shape[0] != valid.shape[0] or valid.shape[0] != out.logits.shape[0]:
            raise AucuesError(f"AU maps must be (N, H, W) with one validity flag per sample; got maps "
                              f"{tuple(au_map.shape)}, valid {tuple(valid.shape)}, batch {out.logits.shape[0]}")
        idx = valid.nonzero(as_tuple=True)[0]
        terms = []
        for layer in self.layers:
            att = self.attention(out, layer)  # every sample: random_avg draws stay per sample
            if idx.numel() == 0:
                terms.append((att * 0).sum())  # keeps the graph; contributes nothing
                continue
            t = att.index_select(0, idx).float().flatten(1)
            a = resize_map(au_map.to(att.device).index_select(0, idx).float(), att.shape[-2:]).flatten(1)
            cos = F.cosine_similarity(t, a, dim=1, eps=EPS)
            terms.append((1.0 - cos).mean())
        align = torch.stack(terms).mean()
        return LossParts(ce + self.lam * align, ce, align)

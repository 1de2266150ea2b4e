"""APViT (Xue et al. 2022; docs/method.md §12): IR-50 face CNN, attention pooling of k tokens, a pooling
ViT and a linear head (train/models/apvit.py). An architecture, so the method pins its backbone:
`--method apvit` builds `--backbone apvit` and trains it plainly (CE, plus the AU loss on its layers;
by default layer 1, the IR-50 map, where the paper aligns and scores it). No CAM.

Options (the reference's apvit_k, apvit_r): k tokens kept by the attention pooling (at most the number
of IR-50 map positions, (image_size / 8)^2, checked when the model is built) and r, the keep rate of
ViT blocks 5-8."""

from __future__ import annotations

from aucues.train.methods.base import Method, Opt, register_method


@register_method
class APViTMethod(Method):
    name = "apvit"
    architecture = "apvit"
    backbones = ("apvit",)
    head_keys = "APVIT"
    au_layers = (1,)  # the paper aligns APViT's IR-50 map (docs/method.md §12)
    # the reference runs APViT at 112 px: its position embedding has 196 = (112 / 8)^2 entries, of
    # which k = 160 are kept; at 224 px the pooling would keep 160 of 784
    image_size = 112
    options = {
        "k": Opt(int, 160, 1, None, what="tokens kept by the attention pooling of the IR-50 map"),
        "r": Opt(float, 0.9, 0.0, 1.0, lo_open=True, what="keep rate of ViT blocks 5-8"),
    }

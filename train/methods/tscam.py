"""TS-CAM (Gao et al. 2021; docs/method.md §12): DeiT-S/16 whose patch-token class maps, times the
semantic-agnostic attention, are the CAM. Encoder and CAM are one architecture (train/models/tscam.py),
so the method pins its backbone: `--method tscam` builds `--backbone tscam` and trains it plainly
(CE, plus the AU loss on the patch-token maps of the chosen layers)."""

from __future__ import annotations

from aucues.train.methods.base import Method, register_method


@register_method
class TSCAMMethod(Method):
    name = "tscam"
    architecture = "tscam"
    backbones = ("tscam",)
    head_keys = "TSCAM"

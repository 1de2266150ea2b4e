"""The nn.Module that is traced: image -> a flat tuple of named outputs.

ModelOutput (logits, cam, attentions, features) is a structure the exporters would flatten in their
own order with their own names; this wrapper fixes order and names instead:
    logits (N,C), probabilities (N,C), cam (N,C,h,w: every class, layer 5, before upsampling; absent
    for a model without a CAM, FERModel.has_cam False: APViT), attention_<k> (N,h_k,w_k) for the chosen
    layers, ascending.
With outputs="logits" only `logits` is returned; the tracer then drops the attention means and the
softmax (the 1x1 CAM convolution stays: the model's logits are its CAM's spatial mean plus bias).
"""

from __future__ import annotations

import copy
import dataclasses

from torch import Tensor, nn

from aucues.errors import AucuesError
from aucues.preprocessing import LAYERS


def output_names(outputs: str, layers: tuple[int, ...], has_cam: bool = True) -> list[str]:
    if outputs == "logits":
        return ["logits"]
    return ["logits", "probabilities"] + (["cam"] if has_cam else []) + [f"attention_{k}" for k in layers]


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module, outputs: str = "all", layers: tuple[int, ...] = LAYERS):
        super().__init__()
        if not hasattr(model, "config") or not hasattr(model, "preprocess"):
            raise AucuesError(f"cannot export {type(model).__name__}: expected an aucues FERModel")
        layers = tuple(sorted(layers)) if outputs == "all" else ()
        # A private copy whose config asks forward() for exactly the exported layers; the caller's
        # model (maybe still training) is left alone.
        inner = copy.deepcopy(model).cpu().eval()  # traced and checked on the CPU
        inner.config = dataclasses.replace(inner.config, attention_layers=layers)
        for p in inner.parameters():
            p.requires_grad_(False)
        self.model = inner
        self.mode = outputs
        self.layers = layers
        self.has_cam = bool(getattr(model, "has_cam", True))
        self.output_names = output_names(outputs, layers, self.has_cam)
        self.eval()

    def train(self, mode: bool = True):
        # Exporters "restore" the caller's training mode after tracing; a fresh module is in training
        # mode, so that would switch BatchNorm to batch statistics for the PyTorch reference. An
        # export wrapper is always in eval mode.
        return super().train(False)

    def forward(self, image: Tensor):
        out = self.model(image)
        if self.mode == "logits":
            return out.logits
        cam = (out.cam,) if self.has_cam else ()
        return (out.logits, out.logits.softmax(dim=1), *cam, *[out.attentions[k] for k in self.layers])

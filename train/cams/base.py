"""CAM methods as a small family (pytorch-grad-cam style): `BaseCAM` + registry.

These are local implementations on purpose: the `grad-cam` PyPI package depends on opencv-python,
which would install a second `cv2` provider beside mediapipe's opencv-contrib-python.

A method sees the layer's activations A (N, K, h, w) and the gradients dS/dA of the chosen class
scores (the logits), and returns a raw (N, h, w) map; the base class min-max normalises it per
sample, upsamples bilinearly to the input size and clamps to [0, 1] (docs/method.md §6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from aucues.errors import AucuesError
from aucues.preprocessing import LAYERS

CAM_METHODS = ("cam", "gradcam", "gradcampp", "gradcampp_reference", "layercam")
_REGISTRY: dict[str, type["BaseCAM"]] = {}


def register_cam(name: str):
    def deco(cls):
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def get_cam(name: str) -> type["BaseCAM"]:
    import aucues.train.cams  # noqa: F401  (registers the methods)

    if name not in _REGISTRY:
        raise AucuesError(f"unknown CAM method '{name}'; choose one of: {', '.join(CAM_METHODS)}")
    return _REGISTRY[name]


class ActivationsAndGradients:
    """Keeps a forward hook on the layer's module while alive; `release()` removes it. Gradients
    are taken with torch.autograd.grad on the captured output, so no parameter .grad is touched
    and no tensor hooks outlive the call."""

    def __init__(self, model, layer: int):
        self.model = model
        self.layer = layer
        self.output: Tensor | None = None
        self._handle = model.layer_module(layer).register_forward_hook(self._save)

    def _save(self, module, inputs, output) -> None:
        self.output = output

    def release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.output = None


def normalize_cam(cam: Tensor, size: tuple[int, int]) -> Tensor:
    """(N, h, w) raw -> (N, H, W) in [0, 1]: per-sample min-max, bilinear upsampling, clamp.
    A constant map becomes all zeros."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1).values, flat.max(1).values
    span = hi - lo
    scaled = (cam - lo[:, None, None]) / torch.where(span > 0, span, torch.ones_like(span))[:, None, None]
    scaled = torch.where((span > 0)[:, None, None], scaled, torch.zeros_like(scaled))
    up = F.interpolate(scaled[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return up.clamp(0.0, 1.0)


class BaseCAM:
    """Usage:  with get_cam("gradcam")(model, layer=5) as cam: maps = cam(x, classes)."""

    name = "base"
    uses_gradients = True

    def __init__(self, model, layer: int = 5):
        if layer not in LAYERS:
            raise AucuesError(f"CAM layer must be among 1..5, got {layer}")
        self.model = model
        self.layer = layer
        self._hooks: ActivationsAndGradients | None = ActivationsAndGradients(model, layer)

    def compute(self, activations: Tensor, grads: Tensor | None, out, classes: Tensor) -> Tensor:
        """Raw (N, h, w) map from activations and gradients (N, K, h, w) of the class scores."""
        raise NotImplementedError

    def __call__(self, x: Tensor, classes: Tensor | None = None) -> Tensor:
        if self._hooks is None:
            raise AucuesError("this CAM was released; create a new one")
        n = x.shape[0]
        with torch.enable_grad():
            # an input that needs grad guarantees a graph even if the parameters are frozen
            out = self.model(x.detach().requires_grad_(True))
            if classes is None:
                classes = out.logits.argmax(1)
            classes = torch.as_tensor(classes, device=out.logits.device).reshape(-1).long()
            if classes.numel() == 1 and n > 1:
                classes = classes.expand(n)
            if classes.numel() != n:
                raise AucuesError(f"got {classes.numel()} classes for a batch of {n}")
            raw = self._hooks.output
            self._hooks.output = None
            acts = self.model.output_to_map(self.layer, raw)
            grads = None
            if self.uses_gradients:
                score = out.logits.gather(1, classes[:, None]).sum()
                (g,) = torch.autograd.grad(score, raw)
                grads = self.model.output_to_map(self.layer, g)
            cam = self.compute(acts.detach().float(), None if grads is None else grads.float(), out, classes)
        return normalize_cam(cam.detach(), tuple(x.shape[-2:]))

    def release(self) -> None:
        if self._hooks is not None:
            self._hooks.release()
            self._hooks = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):
        try:
            self.release()
        except Exception:
            pass

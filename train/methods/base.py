"""The CAM-method family (docs/method.md §6, §12): `Method` base class + registry.

A method changes a built FERModel in up to three places, each optional:
- its classification head (`build_head`: WILDCAT, ACoL, PRM replace the WGAP linear head; the head
  returns logits, the (N, C, h, w) CAM of every class and training-only extras);
- its backbone (`modify_backbone`: ADL's parameter-free modules inside ResNet stages);
- its training step (`step_loss`: CutMix mixes the batch, ACoL feeds the label to the forward and
  adds its second head's CE). The trainer only calls `step_loss`, so methods need no trainer branch.

Options are validated here (`resolve_options`), completed with their defaults and stored in
ModelConfig.method_options, hence in checkpoints and ONNX metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aucues.errors import AucuesError

_REGISTRY: dict[str, "Method"] = {}
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")


@dataclass(frozen=True)
class Opt:
    """One method option: type, default and valid range (lo/hi inclusive unless open)."""

    kind: type
    default: Any
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    what: str = ""

    def range_text(self) -> str:
        if self.kind is bool:
            return "true or false"
        lo = "-inf" if self.lo is None else self.lo
        hi = "inf" if self.hi is None else self.hi
        return f"{'an integer' if self.kind is int else 'a number'} in {'(' if self.lo_open else '['}{lo}, {hi}]"

    def check(self, method: str, key: str, value) -> Any:
        bad = AucuesError(f"{method} option {key} must be {self.range_text()}, got {value!r}")
        if isinstance(value, str):  # CLI / YAML strings
            import yaml

            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise bad from None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise bad
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if self.kind is int:
            if float(value) != int(value):
                raise bad
            value = int(value)
        else:
            value = float(value)
        if value != value or (self.lo is not None and (value < self.lo or (self.lo_open and value == self.lo))) \
                or (self.hi is not None and value > self.hi):
            raise bad
        return value


class Method:
    """Base: the WGAP model trained plainly. Subclasses override what they change."""

    name = "cam"
    options: dict[str, Opt] = {}
    backbones: tuple[str, ...] | None = None  # None: every backbone; else the names it supports
    head_keys: str = "WGAP"                   # what the released checkpoints hold (docs/method.md §11)
    # a method that is a whole architecture (TS-CAM, APViT: encoder and CAM tied together) names its
    # backbone here; `--method tscam` then builds that backbone and trains it plainly
    architecture: str | None = None
    # the AU-loss layers when the run names none (TrainConfig.au_layers None); APViT aligns layer 1
    au_layers: tuple[int, ...] = (5,)
    # the input side when the run names none (TrainConfig.image_size None): None = the paper's 224
    image_size: int | None = None

    def build_head(self, in_channels: int, num_classes: int, opts: dict):
        """-> an nn.Module with forward(features, labels=None) -> (logits, cam, aux), or None for WGAP."""
        return None

    def modify_backbone(self, model, opts: dict) -> None:
        """Change the built model's backbone in place (parameter-free changes only: keys stay)."""

    def forward_kwargs(self, labels) -> dict:
        """Extra keyword arguments of the training forward (ACoL: the labels)."""
        return {}

    def step_loss(self, model, criterion, x, y, au_map, valid, opts: dict):
        """One training step's LossParts (inside the trainer's autocast). Default: plain forward."""
        out = model(x, **self.forward_kwargs(y))
        return self.loss(criterion, out, y, au_map, valid, opts)

    def loss(self, criterion, out, y, au_map, valid, opts: dict):
        return criterion(out, y, au_map, valid)


def register_method(cls):
    inst = cls()
    if inst.name in _REGISTRY:
        raise ValueError(f"method '{inst.name}' registered twice")
    _REGISTRY[inst.name] = inst
    return cls


def _ensure_loaded() -> None:
    import aucues.train.methods  # noqa: F401  (registers the built-in methods)


def available_methods() -> list[str]:
    _ensure_loaded()
    return ["cam"] + sorted(n for n in _REGISTRY if n != "cam")


def get_method(name: str) -> Method:
    _ensure_loaded()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise AucuesError(f"unknown method {name!r}; choose one of: {', '.join(available_methods())}")
    return _REGISTRY[name]


def resolve_options(name: str, options: dict | None, backbone: str) -> dict:
    """Validated, complete options of method `name` on `backbone` (one-line AucuesError otherwise)."""
    method = get_method(name)
    if method.backbones is not None and backbone not in method.backbones:
        kind = "a ResNet backbone" if set(method.backbones) <= set(RESNETS) else "the backbone"
        raise AucuesError(f"method {name} needs {kind} ({', '.join(method.backbones)}), got {backbone!r}")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise AucuesError(f"method options must be a mapping of name to value, got {options!r}")
    unknown = sorted(str(k) for k in options if k not in method.options)
    if unknown:
        valid = ", ".join(method.options) if method.options else "none"
        raise AucuesError(f"unknown {name} option(s) {', '.join(unknown)}; valid options: {valid}")
    return {k: opt.check(name, k, options.get(k, opt.default)) for k, opt in method.options.items()}


def parse_option_flags(items) -> dict:
    """CLI `--method-option KEY=VALUE` (repeatable) -> {KEY: VALUE string} (typed by resolve_options)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise AucuesError(f"--method-option expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def apply_method(model) -> None:
    """Give a freshly built FERModel its method's head and backbone changes (registry.build_model)."""
    cfg = model.config
    method = get_method(cfg.method)
    head = method.build_head(_head_in(model), cfg.num_classes, cfg.method_options)
    if head is not None:
        model.head = head
    method.modify_backbone(model, cfg.method_options)


def _head_in(model) -> int:
    head = model.head
    if hasattr(head, "in_features"):
        return int(head.in_features)
    return int(head.in_channels)

"""How each CAM method of the reference implementation becomes an aucues model (docs/import.md).

One `MethodConverter` per reference `method` name (the spelling of its `config_model.yaml`): it says
which spatial pooling the released checkpoint must have, which extra ModelConfig fields the aucues
model needs (none for the WGAP head every aucues ResNet has), and how the reference's two state
dicts ({"encoder": ..., "classification_head": ...}, docs/method.md §11) become the aucues model's
state dict. Adding a method is one function and one `register_method` call (WILDCAT, ACoL, PRM, ADL and
CutMix map onto train/methods, see train/reference_method_heads.py); methods listed in KNOWN_METHODS without a converter get a one-line error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import Tensor

from aucues.errors import AucuesError

# Every method name the reference code knows for the paper's models (its constants), so an
# unsupported-but-real method gets "not supported yet" and a typo gets "unknown method".
KNOWN_METHODS = ("CAM", "GradCam", "GradCAMpp", "LayerCAM", "CutMIX", "ADL", "WILDCAT", "ACoL", "PRM",
                 "TSCAM", "APVIT", "GAP", "MaxPOL", "LogSumExp", "ScoreCAM", "SSCAM", "ISCAM",
                 "SmoothGradCAMpp", "XGradCAM")


@dataclass(frozen=True)
class Conversion:
    model_fields: dict            # ModelConfig fields beyond backbone / num_classes / large_maps
    state: dict[str, Tensor]      # the aucues model's full state dict
    cam: str = "cam"              # the aucues CAM method that reproduces the reference's CAM
    au_layers: tuple[int, ...] | None = None  # aligned layers in aucues' numbering when not the reference's


@dataclass(frozen=True)
class MethodConverter:
    method: str                   # the reference's spelling
    pooling: str                  # the `spatial_pooling` its checkpoints must have
    convert: Callable[[dict, dict, "ReferenceSpec"], Conversion]
    aliases: tuple[str, ...] = field(default_factory=tuple)
    arch: str = "STDClassifier"   # the YAML's model.arch; other archs save the whole model's state dict (§11)
    encoders: tuple[str, ...] = ()  # encoder names a non-STDClassifier arch accepts


@dataclass(frozen=True)
class ReferenceSpec:
    """What the importer learned from config_model.yaml (docs/method.md §11)."""
    method: str
    pooling: str
    dataset: str
    encoder: str
    large_maps: bool
    num_classes: int
    crop_size: int
    au_loss: bool
    au_layers: tuple[int, ...]
    au_lambda: float
    self_attention: bool
    heatmap_type: str
    valid_freq: float | None = None   # valid_freq_mb: validations per epoch as a fraction of its batches
    options: dict = field(default_factory=dict)  # the method options of config_model.yaml (METHOD_OPTION_KEYS)
    arch: str = "STDClassifier"   # model.arch: STDClassifier (encoder + pooling head) or a whole-model arch
    aucues_au_layers: tuple[int, ...] | None = None  # au_layers renumbered by the converter (TS-CAM)


_CONVERTERS: dict[str, MethodConverter] = {}


def register_method(conv: MethodConverter) -> MethodConverter:
    for key in {n.lower() for n in (conv.method, *conv.aliases)}:  # names match case-insensitively
        if key in _CONVERTERS:
            raise ValueError(f"reference method '{key}' registered twice")
        _CONVERTERS[key] = conv
    return conv


def supported_methods() -> list[str]:
    return sorted({c.method for c in _CONVERTERS.values()})


def arch_encoders(arch: str) -> tuple[str, ...]:
    """Encoder names the converters of a whole-model `arch` (TS-CAM, APViT) accept; () if none."""
    return tuple(sorted({e for c in _CONVERTERS.values() if c.arch == arch for e in c.encoders}))


def method_converter(method: str) -> MethodConverter:
    conv = _CONVERTERS.get(str(method).lower())
    if conv is not None:
        return conv
    known = {m.lower(): m for m in KNOWN_METHODS}
    if str(method).lower() in known:
        raise AucuesError(f"reference method '{known[str(method).lower()]}' is not supported yet "
                          f"(its architecture is not in aucues; supported: {', '.join(supported_methods())})")
    raise AucuesError(f"unknown reference method '{method}' (supported: {', '.join(supported_methods())})")


# --- key helpers ------------------------------------------------------------------------------

def check_keys(state: dict, expected: dict[str, tuple], what: str) -> None:
    """`state` must hold exactly `expected`'s keys with those shapes (one line otherwise)."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k])})" for k in expected
             if k in state and tuple(state[k].shape) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing {', '.join(missing[:3])}" + (f" (+{len(missing) - 3})" if len(missing) > 3 else ""))
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:3])}" + (f" (+{len(unexpected) - 3})" if len(unexpected) > 3 else ""))
    if wrong:
        problems.append(f"wrong shape {'; '.join(wrong[:2])}")
    if problems:
        raise AucuesError(f"{what} does not match: {'; '.join(problems)}")


def encoder_state(encoder: dict) -> dict[str, Tensor]:
    """Reference encoder keys are torchvision's minus fc.* (§11); aucues keeps them under `backbone.`."""
    return {f"backbone.{k}": v for k, v in encoder.items()}


def wgap_head(head: dict, spec: ReferenceSpec, width: int) -> dict[str, Tensor]:
    """WGAP head (§6): GAP then Linear(width -> classes): `fc.*` -> the aucues CAM head `head.*`."""
    check_keys(head, {"fc.weight": (spec.num_classes, width), "fc.bias": (spec.num_classes,)},
               f"classification_head of a {spec.pooling} {spec.method} model")
    return {"head.weight": head["fc.weight"], "head.bias": head["fc.bias"]}


ENCODER_WIDTH = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}


def _width(spec: ReferenceSpec) -> int:
    return ENCODER_WIDTH[spec.encoder]


def convert_wgap(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
    return Conversion(model_fields={}, state={**encoder_state(encoder), **wgap_head(head, spec, _width(spec))})


# ADL (§11-12): parameter-free modules inserted into the block lists of layer3 (after block 0) and
# layer4 (after blocks 0 and 2), so the checkpoint's block indices are shifted: layer3 =
# [0, ADL, 1, 2, 3, 4, 5], layer4 = [0, ADL, 1, 2, ADL]. At eval ADL is the identity, so the aucues
# model is the plain network with the indices shifted back.
ADL_SLOTS = {"layer3": (1,), "layer4": (1, 4)}


def remove_adl_slots(encoder: dict) -> dict:
    out = {}
    for key, value in encoder.items():
        parts = key.split(".")
        if parts[0] in ADL_SLOTS and len(parts) > 2 and parts[1].isdigit():
            i = int(parts[1])
            slots = ADL_SLOTS[parts[0]]
            if i in slots:
                raise AucuesError(f"ADL encoder: {key} sits where an (empty) ADL module should be; "
                                  f"not the ADL layout {parts[0]} = blocks with ADL at {list(slots)}")
            parts[1] = str(i - sum(1 for s in slots if s < i))
            key = ".".join(parts)
        out[key] = value
    return out


def convert_adl(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
    # the aucues ADL model keeps torchvision's block keys (its ADL steps own no weights) and records
    # the method and its options, so fine-tuning it trains with ADL (train/methods/adl.py)
    fields = {"method": "adl", "method_options": {k: spec.options[r] for k, r in
                                                  (("drop_rate", "adl_drop_rate"), ("drop_threshold", "adl_drop_threshold"))
                                                  if r in spec.options}}
    return Conversion(fields, convert_wgap(remove_adl_slots(encoder), head, spec).state)


def _wgap_read_with(cam: str, fields: dict | None = None):
    def convert(encoder: dict, head: dict, spec: ReferenceSpec) -> Conversion:
        return Conversion(dict(fields or {}), convert_wgap(encoder, head, spec).state, cam)

    return convert


# The WGAP-head methods: one network; they differ in how the CAM is read (GradCAM...) or how the
# model was trained (CutMix, ADL). `cam` names the aucues CAM method that reads its maps.
for _method, _cam, _aliases in (("CAM", "cam", ()), ("GradCam", "gradcam", ()),
                                ("GradCAMpp", "gradcampp", ("GradCAM++",)), ("LayerCAM", "layercam", ())):
    register_method(MethodConverter(_method, "WGAP", _wgap_read_with(_cam), _aliases))
register_method(MethodConverter("CutMIX", "WGAP", _wgap_read_with("cam", {"method": "cutmix"})))
register_method(MethodConverter("ADL", "WGAP", convert_adl))

from aucues.train import reference_method_heads as _heads  # noqa: E402,F401  (WILDCAT, ACoL, PRM)
from aucues.train import reference_tscam as _tscam  # noqa: E402,F401  (TSCAM)

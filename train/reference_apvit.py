"""`aucues import reference` for the released APViT models (docs/import.md, docs/method.md §11-12).

Unlike the CNN methods, an APViT `model.pt` is the whole model's state dict (no "encoder" /
"classification_head" split, no prefix). aucues's APViT (train/models/apvit.py) keeps the reference's
module names, so the conversion is the identity on keys: every key and shape is checked against the
built model, then it loads strictly.

Input size: the ViT's position embedding has one entry per IR-50 map position, so the checkpoint fixes
the input side: 196 entries = a 14x14 map = 112 px (the reference feeds APViT 112 px crops). That side
becomes the imported model's image_size, whatever crop_size the run's YAML says."""

from __future__ import annotations

import math
from pathlib import Path

from aucues.errors import AucuesError

METHOD = "APVIT"
ENCODER = "apvit"
OPTION_KEYS = {"apvit_k": "k", "apvit_r": "r"}
POS_KEY = "vit.patch_pos_embed"


def _yaml(folder) -> dict | None:
    import yaml

    try:
        cfg = yaml.safe_load((Path(folder) / "config_model.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    return cfg if isinstance(cfg, dict) else None


def is_apvit(folder) -> bool:
    """Whether `folder`'s config names the APViT method (anything unreadable: False, and the general
    reader reports it)."""
    cfg = _yaml(folder)
    return cfg is not None and str(cfg.get("method", "")).upper() == METHOD


def _option(cfg: dict, model: dict, key: str):
    """The reference keeps apvit_* under `model` (its args.model); older dumps have them at the top."""
    for src in (model, cfg):
        if key in src and src[key] is not None and str(src[key]) not in ("", "None"):
            return src[key]
    return None


def read_apvit_spec(folder, input_size: int):
    from aucues.train.reference_import import (CONFIG_FILE, _bool, _float_or_none, _none, read_au_options,
                                               WEIGHTS_FILE)
    from aucues.train.reference_methods import ReferenceSpec

    folder = Path(folder)
    where = str(folder / CONFIG_FILE)
    missing = [n for n in (CONFIG_FILE, WEIGHTS_FILE) if not (folder / n).is_file()]
    if missing:
        raise AucuesError(f"{folder}: not a released model folder (missing {' and '.join(missing)})")
    cfg = _yaml(folder)
    if cfg is None:
        raise AucuesError(f"{where}: not valid YAML")
    absent = [k for k in ("method", "num_classes", "dataset", "model", "align_atten_to_heatmap") if k not in cfg]
    if absent:
        raise AucuesError(f"{where}: not the reference's config_model.yaml (missing {', '.join(absent)})")
    model = cfg["model"] if isinstance(cfg["model"], dict) else {}
    encoder = str(model.get("encoder_name", cfg.get("encoder_name", "")))
    if encoder != ENCODER:
        raise AucuesError(f"{where}: method APVIT with encoder '{encoder}' (expected {ENCODER})")
    if not _none(cfg.get("dense_dims")):
        raise AucuesError(f"{where}: dense_dims {cfg['dense_dims']!r} (dense layers before the APViT head) "
                          "is not supported")
    attn = _option(cfg, model, "apvit_attn_method")
    if attn is not None and str(attn) != "SUM_ABS_1":
        raise AucuesError(f"{where}: apvit_attn_method {attn!r} is not supported (only SUM_ABS_1, the paper's)")
    if attn is not None and _bool(_option(cfg, model, "apvit_apply_self_att") or False, "apvit_apply_self_att", where):
        raise AucuesError(f"{where}: apvit_apply_self_att=True is not supported")
    try:
        num_classes = int(cfg["num_classes"])
    except (TypeError, ValueError):
        raise AucuesError(f"{where}: num_classes must be an integer") from None
    if num_classes not in (7, 8):
        raise AucuesError(f"{where}: num_classes must be 7 (or 8 with Contempt), got {num_classes}")
    au, layers, lam = read_au_options(cfg, where, default_layers="1")
    options = {OPTION_KEYS[k]: v for k in OPTION_KEYS if (v := _option(cfg, model, k)) is not None}
    return ReferenceSpec(
        method=METHOD, pooling=str(cfg.get("spatial_pooling", "")), dataset=str(cfg["dataset"]), encoder=ENCODER,
        large_maps=False, num_classes=num_classes, crop_size=input_size, au_loss=au, au_layers=layers,
        au_lambda=lam, self_attention=False, heatmap_type=str(cfg.get("align_atten_to_heatmap_type_heatmap", "")),
        valid_freq=_float_or_none(cfg.get("valid_freq_mb")), options=options, arch=str(model.get("arch", "")))


def input_size(state: dict, where: str) -> int:
    """The image side the checkpoint was trained at, from its position embedding (module doc)."""
    from aucues.train.models.apvit import STRIDE

    pos = state.get(POS_KEY)
    n = int(pos.shape[1]) if pos is not None and pos.ndim == 3 else 0
    g = math.isqrt(n)
    if n == 0 or g * g != n:
        raise AucuesError(f"{where}: {POS_KEY} must be (1, g*g, D) for a g x g IR-50 map, got "
                          f"{None if pos is None else tuple(pos.shape)}")
    return g * STRIDE


def convert_apvit(folder):
    """A released APViT folder -> (aucues FERModel in eval mode, ReferenceSpec, CAM name "none")."""
    import torch

    from aucues.labels import class_names
    from aucues.preprocessing import PreprocessConfig
    from aucues.train.models import ModelConfig, build_model
    from aucues.train.reference_methods import check_keys

    where = str(Path(folder) / "model.pt")
    if not Path(folder).is_dir():
        raise AucuesError(f"{folder}: no such folder")
    from aucues.train.reference_import import read_weights

    state = (read_weights(folder, whole=True, what="APViT's whole-model state dict")[0]
             if (Path(folder) / "model.pt").is_file() else {})
    size = input_size(state, where) if state else 0
    spec = read_apvit_spec(folder, size)
    mc = ModelConfig(backbone="apvit", method="apvit", method_options=dict(spec.options), num_classes=spec.num_classes,
                     large_maps=False, weights="random")
    pre = PreprocessConfig(image_size=size, class_names=class_names(spec.num_classes), codebook="reference")
    model = build_model(mc, pre)
    own = model.state_dict()
    for k, v in own.items():  # counters only the training loop reads; older torch saves lacked them
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    check_keys(state, {k: tuple(v.shape) for k, v in own.items()}, f"{where}: the APViT state dict")
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise AucuesError(f"{where}: non-finite values in {', '.join(bad[:3])}")
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=True)
    return model.eval(), spec, "none"

"""A released TS-CAM model folder in the reference implementation's layout (docs/method.md §11-12) from
random weights: the folder naming, `config_model.yaml` with method TSCAM / arch TSCAMClassifier /
pooling GAP, and `model.pt` = the whole model's state dict under the reference's names (timm's
VisionTransformer names, which the reference's fork keeps, plus the conv head `head.*`). Nothing here
imports aucues."""

from __future__ import annotations

import torch
import yaml

from tests.train.reference_layout import folder_for, run_args

ENCODER = "deit_tscam_small_patch16_224"


def random_deit_state(crop: int, num_classes: int = 7, seed: int = 0) -> dict:
    """DeiT-S/16 keys (from timm's VisionTransformer, the library the reference's fork came from) with
    random values far from timm's init (peaky attention, non-trivial LayerNorms), plus a conv3x3 head."""
    from timm.models.vision_transformer import VisionTransformer

    names = VisionTransformer(img_size=crop, patch_size=16, num_classes=0, global_pool="", embed_dim=384,
                              depth=12, num_heads=6, qkv_bias=True).state_dict()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in names.items():
        if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
            t = 1 + 0.3 * torch.randn(v.shape, generator=g)
        elif v.ndim == 1:
            t = 0.1 * torch.randn(v.shape, generator=g)
        elif k in ("cls_token", "pos_embed"):
            t = 0.5 * torch.randn(v.shape, generator=g)
        else:  # linear / conv weights: unit-variance outputs, qkv doubled for sharper attention
            fan_in = v[0].numel()
            t = torch.randn(v.shape, generator=g) / fan_in ** 0.5 * (2.0 if "qkv" in k else 1.0)
        state[k] = t
    state["head.weight"] = torch.randn(num_classes, 384, 3, 3, generator=g) / (384 * 9) ** 0.5
    state["head.bias"] = 0.1 * torch.randn(num_classes, generator=g)
    return state


def tscam_run_args(dataset: str, au: bool, crop: int, layers: str = "1", lam: float = 9.0) -> dict:
    args = run_args(dataset, ENCODER, "TSCAM", au, pooling="GAP", crop=crop, layers=layers, lam=lam)
    args.update(arch="TSCAMClassifier", large_maps=False)
    args["model"].update(arch="TSCAMClassifier", encoder_name=ENCODER, large_maps=False, encoder_depth=None)
    return args


def make_tscam_folder(root, dataset: str = "RAF-DB", au: bool = True, crop: int = 64, seed: int = 0,
                      layers: str = "1", state: dict | None = None):
    """-> (folder, the state dict written to model.pt)."""
    folder = folder_for(root, dataset, ENCODER, "TSCAM", au, pooling="GAP")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config_model.yaml").write_text(yaml.dump(tscam_run_args(dataset, au, crop, layers)))
    state = random_deit_state(crop, seed=seed) if state is None else state
    torch.save(state, folder / "model.pt")
    return folder, state

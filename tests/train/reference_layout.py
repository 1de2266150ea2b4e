"""Build a released-model folder in exactly the reference implementation's layout (docs/method.md
§11) from random weights: the folder naming, `config_model.yaml` (a YAML dump of the run's
arguments) and `model.pt` = {"encoder": torchvision keys minus fc.*, "classification_head":
{"fc.weight", "fc.bias"}}. Used by the importer's tests; nothing here imports aucues."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

ADL_SLOTS = {"layer3": (1,), "layer4": (1, 4)}


def random_resnet(encoder: str = "resnet50", seed: int = 0):
    """A torchvision ResNet with random convs and random BatchNorm affine AND running statistics
    (torchvision's init leaves BN as identity, which would hide a mis-loaded buffer)."""
    import torchvision

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = getattr(torchvision.models, encoder)(weights=None)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
                m.num_batches_tracked.fill_(1234)
    return net.eval()


def folder_for(root: Path, dataset: str, encoder: str, method: str, au: bool, pooling: str = "WGAP",
               cp: str = "best") -> Path:
    return (Path(root) / "FG_FER" / dataset / encoder / "STD_CL" / method / f"align_atten_to_heatmap_{au}"
            / f"{dataset}-{encoder}-{method}-{pooling}-cp_{cp}-boxv2_False")


def run_args(dataset: str, encoder: str, method: str, au: bool, pooling: str = "WGAP", crop: int = 224,
             layers: str = "5", lam: float = 9.0) -> dict:
    """The keys a config_model.yaml holds (a subset of the run's arguments; the reference dumps all)."""
    return {
        "task": "STD_CL", "method": method, "spatial_pooling": pooling, "dataset": dataset, "num_classes": 7,
        "crop_size": crop, "resize_size": 256, "encoder_name": encoder, "arch": "STDClassifier",
        "dense_dims": "None", "dense_dropout": 0.0, "spatial_dropout": 0.0, "large_maps": True,
        "support_background": False, "encoder_weights": "imagenet", "valid_freq_mb": 0.0437,
        "max_epochs": 20, "batch_size": 224, "amp": True, "exp_id": "01_26_2024_15_19_40_248783__324660",
        "model": {"arch": "STDClassifier", "encoder_name": encoder, "encoder_weights": "imagenet",
                  "large_maps": True, "support_background": False, "in_channels": 3, "encoder_depth": 5,
                  "aux_params": None},
        "align_atten_to_heatmap": au,
        "align_atten_to_heatmap_type_heatmap": "heatmap_action_units_from_landmarks",
        "align_atten_to_heatmap_normalize": True, "align_atten_to_heatmap_jaw": False,
        "align_atten_to_heatmap_lndmk_variance": 64.0, "align_atten_to_heatmap_layers": layers,
        "align_atten_to_heatmap_align_type": "random_avg", "align_atten_to_heatmap_p": 1.0,
        "align_atten_to_heatmap_loss": "cosine", "align_atten_to_heatmap_lambda": lam,
        "align_atten_to_heatmap_scale_to": "scale_to_attention",
        "align_atten_to_heatmap_use_self_atten": False,
        "wc_modalities": 5, "wc_kmax": 0.5, "wc_kmin": 0.1, "wc_alpha": 0.6, "acol_drop_threshold": 0.1,
        "prm_ks": 3, "prm_st": 1, "adl_drop_rate": 0.4, "adl_drop_threshold": 0.1, "apvit_k": 160,
        "apvit_r": 0.9,
    }


def shift_for_adl(encoder_state: dict) -> dict:
    """Insert the (parameter-free) ADL slots into the block indices: layer3 = [0, ADL, 1, ..., 5],
    layer4 = [0, ADL, 1, 2, ADL]."""
    out = {}
    for k, v in encoder_state.items():
        parts = k.split(".")
        if parts[0] in ADL_SLOTS:
            i = int(parts[1])
            for s in ADL_SLOTS[parts[0]]:
                if i >= s:
                    i += 1
            parts[1] = str(i)
        out[".".join(parts)] = v
    return out


def make_reference_folder(root, dataset: str = "RAF-DB", method: str = "CAM", au: bool = True,
                          encoder: str = "resnet50", seed: int = 0, crop: int = 224, pooling: str = "WGAP",
                          head: dict | None = None, **args):
    """-> (folder, torchvision net with its encoder weights, fc weight, fc bias). `head`: another
    classification_head state dict (WILDCAT, ACoL, PRM) written in place of the WGAP fc."""
    net = random_resnet(encoder, seed)
    g = torch.Generator().manual_seed(seed + 1)
    width = net.fc.in_features
    fc_w = torch.randn(7, width, generator=g) / width ** 0.5
    fc_b = torch.randn(7, generator=g) * 0.1
    enc = {k: v.clone() for k, v in net.state_dict().items() if not k.startswith("fc.")}
    if method == "ADL":
        enc = shift_for_adl(enc)
    folder = folder_for(root, dataset, encoder, method, au, pooling)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config_model.yaml").write_text(yaml.dump(run_args(dataset, encoder, method, au, pooling, crop=crop,
                                                                 **args)))
    cls_head = head if head is not None else {"fc.weight": fc_w, "fc.bias": fc_b}
    torch.save({"encoder": enc, "classification_head": cls_head}, folder / "model.pt")
    return folder, net, fc_w, fc_b

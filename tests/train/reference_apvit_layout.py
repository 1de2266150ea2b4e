"""A released APViT model folder in the reference implementation's layout (docs/method.md §11) from
random weights, and an independent forward of that state dict with plain torch functional ops,
written from the reference's architecture description (IR-50 bottleneck_IR units, SUM_ABS_1 attention
pooling, PoolingViT blocks that drop tokens between attention and MLP, CLS -> LayerNorm -> fc).
Nothing here imports aucues."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import yaml

from tests.train.reference_layout import folder_for, run_args

WIDTHS = (64, 128, 256)


def apvit_state(units=(3, 4, 14), depth=8, dim=768, grid=14, classes=7, seed=0) -> dict:
    """Every key of the reference's PoolingVitClassifier state dict, random values (BN statistics too)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=0.1):
        return torch.randn(*shape, generator=g) * scale

    sd = {}

    def bn(p, c):
        sd[f"{p}.weight"] = torch.rand(c, generator=g) * 0.5 + 0.5
        sd[f"{p}.bias"] = rnd(c)
        sd[f"{p}.running_mean"] = rnd(c)
        sd[f"{p}.running_var"] = torch.rand(c, generator=g) * 0.5 + 0.75
        sd[f"{p}.num_batches_tracked"] = torch.tensor(321)

    sd["extractor.input_layer.0.weight"] = rnd(64, 3, 3, 3, scale=0.3)
    bn("extractor.input_layer.1", 64)
    sd["extractor.input_layer.2.weight"] = 0.25 + rnd(64)
    cin = 64
    for s, (n, c) in enumerate(zip(units, WIDTHS)):
        for i in range(n):
            p, ci = f"extractor.body.{s}.{i}", (cin if i == 0 else c)
            if ci != c:
                sd[f"{p}.shortcut_layer.0.weight"] = rnd(c, ci, 1, 1, scale=1 / math.sqrt(ci))
                bn(f"{p}.shortcut_layer.1", c)
            bn(f"{p}.res_layer.0", ci)
            sd[f"{p}.res_layer.1.weight"] = rnd(c, ci, 3, 3, scale=1 / math.sqrt(9 * ci))
            sd[f"{p}.res_layer.2.weight"] = 0.25 + rnd(c)
            sd[f"{p}.res_layer.3.weight"] = rnd(c, c, 3, 3, scale=1 / math.sqrt(9 * c))
            bn(f"{p}.res_layer.4", c)
        cin = c
    sd["vit.cls_token"] = rnd(1, 1, dim, scale=0.5)
    sd["vit.patch_pos_embed"] = rnd(1, grid * grid, dim, scale=0.5)
    sd["vit.cls_pos_embed"] = rnd(1, 1, dim, scale=0.5)
    sd["vit.projs.0.weight"] = rnd(dim, WIDTHS[-1], 1, 1, scale=1 / math.sqrt(WIDTHS[-1]))
    sd["vit.projs.0.bias"] = rnd(dim)
    for i in range(depth):
        p = f"vit.blocks.{i}"
        for n in ("norm1", "norm2"):
            sd[f"{p}.{n}.weight"] = 1 + rnd(dim)
            sd[f"{p}.{n}.bias"] = rnd(dim)
        sd[f"{p}.attn.qkv.weight"] = rnd(3 * dim, dim, scale=1 / math.sqrt(dim))
        sd[f"{p}.attn.proj.weight"] = rnd(dim, dim, scale=1 / math.sqrt(dim))
        sd[f"{p}.attn.proj.bias"] = rnd(dim)
        sd[f"{p}.mlp.fc1.weight"] = rnd(3 * dim, dim, scale=1 / math.sqrt(dim))
        sd[f"{p}.mlp.fc1.bias"] = rnd(3 * dim)
        sd[f"{p}.mlp.fc2.weight"] = rnd(dim, 3 * dim, scale=1 / math.sqrt(3 * dim))
        sd[f"{p}.mlp.fc2.bias"] = rnd(dim)
    sd["vit.norm.weight"] = 1 + rnd(dim)
    sd["vit.norm.bias"] = rnd(dim)
    sd["classification_head.fc.weight"] = rnd(classes, dim, scale=1.0)
    sd["classification_head.fc.bias"] = rnd(classes)
    return sd


def apvit_forward(sd: dict, x: torch.Tensor, k: int, r: float, heads: int) -> torch.Tensor:
    """Logits of the reference's APViT (eval mode) computed from `sd` with functional ops."""
    def bn(h, p):
        return F.batch_norm(h, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            False, 0.0, 1e-5)

    with torch.no_grad():
        h = F.prelu(bn(F.conv2d(x, sd["extractor.input_layer.0.weight"], padding=1), "extractor.input_layer.1"),
                    sd["extractor.input_layer.2.weight"])
        s = 0
        while f"extractor.body.{s}.0.res_layer.1.weight" in sd:
            i = 0
            while f"extractor.body.{s}.{i}.res_layer.1.weight" in sd:
                p, stride = f"extractor.body.{s}.{i}", (2 if i == 0 else 1)
                if f"{p}.shortcut_layer.0.weight" in sd:
                    sc = bn(F.conv2d(h, sd[f"{p}.shortcut_layer.0.weight"], stride=stride), f"{p}.shortcut_layer.1")
                else:  # MaxPool2d(1, stride): plain subsampling
                    sc = h[:, :, ::stride, ::stride]
                y = F.conv2d(bn(h, f"{p}.res_layer.0"), sd[f"{p}.res_layer.1.weight"], padding=1)
                y = F.conv2d(F.prelu(y, sd[f"{p}.res_layer.2.weight"]), sd[f"{p}.res_layer.3.weight"], stride=stride,
                             padding=1)
                h = bn(y, f"{p}.res_layer.4") + sc
                i += 1
            s += 1
        proj = F.conv2d(h, sd["vit.projs.0.weight"], sd["vit.projs.0.bias"])
        b, dim = proj.shape[:2]
        score = proj.abs().sum(1).reshape(b, -1)                     # SUM_ABS_1 attention map
        t = proj.flatten(2).transpose(1, 2) + sd["vit.patch_pos_embed"]
        if k < t.shape[1]:
            keep = [sorted(score[j].topk(k).indices.tolist()) for j in range(b)]
            t = torch.stack([t[j, keep[j]] for j in range(b)])
        t = torch.cat([(sd["vit.cls_token"] + sd["vit.cls_pos_embed"]).expand(b, -1, -1), t], dim=1)
        depth = 0
        while f"vit.blocks.{depth}.attn.qkv.weight" in sd:
            depth += 1
        rates = [1.0] * 4 + [r] * (depth - 4)
        hd = dim // heads
        for i in range(depth):
            p = f"vit.blocks.{i}"
            y = F.layer_norm(t, (dim,), sd[f"{p}.norm1.weight"], sd[f"{p}.norm1.bias"], 1e-6)
            q, kk, v = (z.reshape(b, -1, heads, hd).transpose(1, 2)
                        for z in F.linear(y, sd[f"{p}.attn.qkv.weight"]).chunk(3, -1))
            logits = q @ kk.transpose(-2, -1) * hd ** -0.5
            o = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, dim)
            t = t + F.linear(o, sd[f"{p}.attn.proj.weight"], sd[f"{p}.attn.proj.bias"])
            n = t.shape[1] - 1
            keep_n = max(int(n * rates[i]), 1)
            if keep_n != n:  # rank patch tokens by the CLS row of the logits summed over heads
                cls_row = logits[:, :, 0, 1:].sum(1)
                keep = [[0] + [1 + c for c in sorted(cls_row[j].topk(keep_n).indices.tolist())] for j in range(b)]
                t = torch.stack([t[j, keep[j]] for j in range(b)])
            y = F.layer_norm(t, (dim,), sd[f"{p}.norm2.weight"], sd[f"{p}.norm2.bias"], 1e-6)
            y = F.linear(F.gelu(F.linear(y, sd[f"{p}.mlp.fc1.weight"], sd[f"{p}.mlp.fc1.bias"])),
                         sd[f"{p}.mlp.fc2.weight"], sd[f"{p}.mlp.fc2.bias"])
            t = t + y
        t = F.layer_norm(t, (dim,), sd["vit.norm.weight"], sd["vit.norm.bias"], 1e-6)
        return F.linear(t[:, 0], sd["classification_head.fc.weight"], sd["classification_head.fc.bias"])


def make_apvit_folder(root, state: dict, dataset="RAF-DB", au=True, k=160, r=0.9, layers="1", lam=4.0):
    """The released folder: config_model.yaml (method APVIT, encoder apvit; apvit_* under `model` as the
    reference's args.model holds them) and model.pt (the whole-model state dict)."""
    folder = folder_for(root, dataset, "apvit", "APVIT", au)
    folder.mkdir(parents=True)
    args = run_args(dataset, "apvit", "APVIT", au, crop=224, layers=layers, lam=lam)
    args.pop("apvit_k")
    args.pop("apvit_r")
    args["model"].update({"arch": "APVITCLASSIFIER", "encoder_name": "apvit", "apvit_k": k, "apvit_r": r,
                          "apvit_attn_method": "SUM_ABS_1", "apvit_normalize_att": False,
                          "apvit_apply_self_att": False, "apvit_hid_att_dim": 128})
    (folder / "config_model.yaml").write_text(yaml.safe_dump(args))
    torch.save(state, folder / "model.pt")
    return folder

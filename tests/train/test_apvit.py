"""APViT (train/models/apvit.py, docs/methods.md APViT): the architecture at reduced width and depth
(SIZES patched; same code paths), token pooling, layer maps, no CAM, the method pinning its backbone,
training with and without the AU loss, bad use in one line."""

from __future__ import annotations

import pytest
import torch

from aucues.errors import AucuesError
from aucues.preprocessing import PreprocessConfig

SIZE = 64  # an 8x8 IR-50 map: 64 tokens
TINY = {"units": (1, 1, 2), "depth": 6, "embed_dim": 32, "num_heads": 2}


@pytest.fixture()
def tiny(monkeypatch):
    import aucues.train.models.apvit as apvit

    monkeypatch.setattr(apvit, "SIZES", TINY)
    return apvit


def _model(k=40, r=0.9, size=SIZE, **cfg):
    from aucues.train.models import ModelConfig, build_model

    torch.manual_seed(0)
    return build_model(ModelConfig(backbone="apvit", method="apvit", method_options={"k": k, "r": r}, **cfg),
                       PreprocessConfig(image_size=size))


def test_shapes_pooling_and_no_cam(tiny):
    model = _model().eval()
    assert model.has_cam is False and model.vit.counts == [40, 40, 40, 40, 36, 32]
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        out = model(x)
    assert out.logits.shape == (3, 7) and out.cam is None
    assert {l: tuple(a.shape) for l, a in out.attentions.items()} == {l: (3, 8, 8) for l in range(1, 6)}
    assert out.features[1].shape == (3, 256, 8, 8)  # the IR-50 map the ViT reads
    # layers 2..5 (after blocks 2, 3, 4, 6 of 6) hold the surviving tokens on the grid: 40 after the CNN
    # pooling, 32 after block 6 (blocks 5, 6 keep int(40 * 0.9) = 36, then 32)
    alive = {l: (out.features[l] != 0).any(1).flatten(1).sum(1).tolist() for l in (2, 3, 4, 5)}
    assert alive == {2: [40] * 3, 3: [40] * 3, 4: [40] * 3, 5: [32] * 3}
    assert model.layer_shapes(SIZE) == {l: (8, 8) for l in range(1, 6)}


def test_attention_pooling_keeps_the_largest_abs_sum_tokens(tiny):
    model = _model(k=10).eval()
    x = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        fmap = model.extractor(x)
        score = model.vit.projs[0](fmap).abs().sum(1).flatten(1)
        layer2 = model.forward_intermediates(x, (2,))[2]
    kept = (layer2 != 0).any(1).flatten(1)
    expected = torch.zeros_like(kept)
    expected.scatter_(1, score.topk(10, dim=1).indices, True)
    assert torch.equal(kept, expected)


def test_state_dict_uses_the_reference_names(tiny):
    keys = set(_model().state_dict())
    for k in ("extractor.input_layer.0.weight", "extractor.body.0.0.res_layer.2.weight",
              "extractor.body.1.0.shortcut_layer.1.running_var", "vit.projs.0.weight", "vit.cls_token",
              "vit.patch_pos_embed", "vit.cls_pos_embed", "vit.blocks.5.attn.qkv.weight", "vit.blocks.0.mlp.fc2.bias",
              "vit.norm.weight", "classification_head.fc.weight"):
        assert k in keys, k
    assert not any(k.startswith(("head.", "backbone.")) for k in keys)


@pytest.mark.parametrize("au", [False, True])
def test_training_step_with_and_without_au_loss(tiny, au):
    from aucues.train.loss import AUAlignmentLoss

    model = _model().train()
    crit = AUAlignmentLoss((1,), 9.0, enabled=au)
    x, y = torch.randn(4, 3, SIZE, SIZE), torch.tensor([1, 2, 3, 4])
    amap, valid = torch.rand(4, SIZE, SIZE), torch.ones(4, dtype=torch.bool)
    parts = crit(model(x), y, amap, valid)
    parts.total.backward()
    head = model.classification_head.fc.weight.grad
    assert head is not None and head.abs().sum() > 0
    # the head starts at 0 (the reference's init), so on the first step only the AU loss reaches the IR-50
    g = model.extractor.input_layer[0].weight.grad
    assert g is not None and torch.isfinite(g).all() and bool(g.abs().sum() > 0) is au
    assert bool(parts.align > 0) is au


def test_local_weights_load_strictly(tiny, tmp_path):
    src = _model()
    torch.save(src.state_dict(), tmp_path / "w.pt")
    model = _model(weights=str(tmp_path / "w.pt"))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), model.state_dict().values()))
    state = src.state_dict()
    state.pop("vit.norm.weight")
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(AucuesError, match="1 missing keys"):
        _model(weights=str(tmp_path / "bad.pt"))


def test_bad_use_is_one_line(tiny):
    with pytest.raises(AucuesError, match=r"apvit option k must be in \[1, 64\]"):
        _model(k=65)
    with pytest.raises(AucuesError, match="divisible by 8"):
        _model(size=60)
    with pytest.raises(AucuesError, match="self-attention"):
        _model(self_attention_layers=(1,))
    with pytest.raises(AucuesError, match="r must be a number in \\(0.0, 1.0\\]"):
        _model(r=0.0)
    from aucues.train.models import ModelConfig, build_model

    with pytest.raises(AucuesError, match="train it with --method apvit"):
        build_model(ModelConfig(backbone="apvit"), PreprocessConfig(image_size=SIZE))
    with pytest.raises(AucuesError, match="apvit takes an image batch"):
        _model()(torch.randn(1, 3, 32, 32))
    with pytest.raises(AucuesError, match="no CAM"):
        _model().layer_module(5)


def test_method_apvit_pins_its_backbone_and_layer_1():
    from aucues.train.config import TrainConfig

    c = TrainConfig(method="apvit").validate()
    assert c.backbone == "apvit" and c.au_layers == (1,) and c.method_options == {"k": 160, "r": 0.9}
    assert TrainConfig().validate().au_layers == (5,)
    assert TrainConfig(method="apvit", au_layers=(1, 5)).validate().au_layers == (1, 5)
    with pytest.raises(AucuesError, match="fixed by method apvit"):
        TrainConfig(method="apvit", backbone="resnet18").validate()


def test_method_apvit_defaults_to_the_reference_geometry():
    from aucues.train.config import TrainConfig

    cfg = TrainConfig(method="apvit").validate()
    assert (cfg.backbone, cfg.image_size, cfg.au_layers) == ("apvit", 112, (1,))
    assert TrainConfig(method="apvit", image_size=224).validate().image_size == 224  # a flag still wins
    assert TrainConfig(method="cam").validate().image_size == 224 and TrainConfig().validate().au_layers == (5,)

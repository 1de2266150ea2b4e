"""`aucues import reference` for the methods with their own heads (WILDCAT, ACoL, PRM) and the
training-only ones (ADL, CutMix): a folder in the released layout (docs/method.md §11) built from
random weights imports into the aucues method, whose logits and CAM match a forward written here
from the state dicts (torchvision's resnet with §5's strides set by hand, then §12's head)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
import yaml

from tests.train.reference_layout import make_reference_folder

SIZE = 64
ENC = "resnet18"  # 512 channels: the heads' shapes follow the encoder width


def layer4(net, x):
    """§5 large maps: stride 1 in the first block of layer3 and layer4, dilation 1."""
    net = copy.deepcopy(net).eval()
    for layer in (net.layer3, net.layer4):
        layer[0].conv1.stride = (1, 1)  # BasicBlock: the 3x3 conv1 carries the stride
        layer[0].downsample[0].stride = (1, 1)
    with torch.no_grad():
        h = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        return net.layer4(net.layer3(net.layer2(net.layer1(h))))


def _import(folder, tmp_path):
    from aucues.train.checkpoint import load_checkpoint
    from aucues.train.reference_import import import_reference

    import_reference(folder, tmp_path / "m.pt")
    return load_checkpoint(tmp_path / "m.pt")


def _x(n=2, seed=0):
    return torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _close(got, want, what):
    scale = float(want.abs().max())
    err = float((got - want).abs().max())
    assert scale > 0 and err <= 1e-4 * scale, f"{what}: max abs diff {err:.3g} > 1e-4 x {scale:.3g}"


def _rand(g, *shape, scale=0.05):
    return torch.randn(*shape, generator=g) * scale


def test_wildcat_parity(tmp_path):
    g = torch.Generator().manual_seed(5)
    head = {"to_modalities.weight": _rand(g, 35, 512, 1, 1), "to_modalities.bias": _rand(g, 35)}
    folder, net, *_ = make_reference_folder(tmp_path, "RAF-DB", "WILDCAT", True, encoder=ENC, crop=SIZE,
                                            pooling="WildCatCLHead", head=head)
    model, info = _import(folder, tmp_path)
    assert model.config.method == "wildcat"
    assert model.config.method_options == {"modalities": 5, "kmax": 0.5, "kmin": 0.1, "alpha": 0.6,
                                           "reference_pooling": True}
    x = _x()
    a = layer4(net, x)
    mods = F.conv2d(a, head["to_modalities.weight"], head["to_modalities.bias"])
    maps = mods.reshape(2, 7, 5, *a.shape[-2:]).mean(2)  # class-wise pooling: channel c*5 + j
    flat = maps.flatten(2).sort(-1, descending=True).values
    logits = flat[..., : round(0.5 * flat.shape[-1])].mean(-1)  # as run: the top-50% mean only
    with torch.no_grad():
        o = model(x)
    _close(o.cam, maps, "WILDCAT cam")
    _close(o.logits, logits, "WILDCAT logits")


def test_prm_parity_and_options(tmp_path):
    g = torch.Generator().manual_seed(6)
    head = {"conv.weight": _rand(g, 7, 512, 1, 1), "conv.bias": _rand(g, 7)}
    folder, net, *_ = make_reference_folder(tmp_path, "AffectNet", "PRM", False, encoder=ENC, crop=SIZE,
                                            pooling="PRM", head=head)
    cfg = yaml.safe_load((folder / "config_model.yaml").read_text())
    cfg["prm_ks"] = 5  # the run's peak kernel reaches the model
    (folder / "config_model.yaml").write_text(yaml.dump(cfg))
    model, _ = _import(folder, tmp_path)
    assert model.config.method == "prm" and model.config.method_options == {"ks": 5, "st": 1}
    x = _x(3, 1)
    maps = F.conv2d(layer4(net, x), head["conv.weight"], head["conv.bias"])
    with torch.no_grad():
        o = model(x)
    _close(o.cam, maps, "PRM cam")
    _close(o.logits, F.max_pool2d(maps, 5, 1).mean((2, 3)), "PRM logits")


def _acol_head(g, hidden=32):
    head = {}
    for h in "AB":
        for i, (w, b) in {0: ((hidden, 512, 3, 3), (hidden,)), 2: ((hidden, hidden, 3, 3), (hidden,)),
                          4: ((7, hidden, 1, 1), (7,))}.items():
            head[f"acol_pooler.classifier_{h}.{i}.weight"] = _rand(g, *w)
            head[f"acol_pooler.classifier_{h}.{i}.bias"] = _rand(g, *b)
    return head


def test_acol_parity(tmp_path):
    head = _acol_head(torch.Generator().manual_seed(7))
    folder, net, *_ = make_reference_folder(tmp_path, "RAF-DB", "ACoL", True, encoder=ENC, crop=SIZE,
                                            pooling="ACOL", head=head)
    model, _ = _import(folder, tmp_path)
    assert model.config.method == "acol" and model.config.method_options == {"drop_threshold": 0.1, "hidden": 32}
    x = _x(2, 2)
    a = layer4(net, x)

    def branch(h, t):
        p = lambda i, k: head[f"acol_pooler.classifier_{h}.{i}.{k}"]  # noqa: E731
        t = F.relu(F.conv2d(t, p(0, "weight"), p(0, "bias"), padding=1))
        t = F.relu(F.conv2d(t, p(2, "weight"), p(2, "bias"), padding=1))
        return F.conv2d(t, p(4, "weight"), p(4, "bias"))

    def norm(m):
        lo, hi = m.amin((2, 3), keepdim=True), m.amax((2, 3), keepdim=True)
        return (m - lo) / (hi - lo)

    ma, mb = branch("A", a), branch("B", a)  # inference: no erasing (train/methods/acol.py)
    with torch.no_grad():
        o = model(x)
    _close(o.logits, ma.mean((2, 3)), "ACoL logits (head A)")
    _close(o.cam, torch.maximum(norm(ma), norm(mb)), "ACoL cam")


@pytest.mark.parametrize("method,want", [("ADL", {"method": "adl", "method_options": {"drop_rate": 0.4,
                                                                                     "drop_threshold": 0.1}}),
                                         ("CutMIX", {"method": "cutmix",
                                                     "method_options": {"beta": 1.0, "prob": 1.0}})])
def test_training_only_methods_keep_their_method(tmp_path, method, want):
    folder, net, fc_w, fc_b = make_reference_folder(tmp_path, "RAF-DB", method, True, encoder=ENC, crop=SIZE)
    model, _ = _import(folder, tmp_path)
    assert {"method": model.config.method, "method_options": model.config.method_options} == want
    x = _x(2, 3)
    a = layer4(net, x)
    with torch.no_grad():
        o = model(x)
    _close(o.logits, a.mean((2, 3)) @ fc_w.T + fc_b, f"{method} logits")


def test_head_that_does_not_fit_is_one_line(tmp_path):
    from aucues.errors import AucuesError
    from aucues.train.reference_import import import_reference

    g = torch.Generator().manual_seed(8)
    head = {"conv.weight": _rand(g, 7, 256, 1, 1), "conv.bias": _rand(g, 7)}  # wrong width
    folder, *_ = make_reference_folder(tmp_path, "RAF-DB", "PRM", True, encoder=ENC, crop=SIZE, pooling="PRM",
                                       head=head)
    with pytest.raises(AucuesError, match="PRM model does not match: wrong shape conv.weight") as e:
        import_reference(folder, tmp_path / "x.pt")
    assert "\n" not in str(e.value) and not (tmp_path / "x.pt").exists()
    head = _acol_head(g)
    folder, *_ = make_reference_folder(tmp_path / "w", "RAF-DB", "ACoL", True, encoder=ENC, crop=SIZE,
                                       pooling="WGAP", head=head)
    with pytest.raises(AucuesError, match="spatial_pooling 'WGAP' \\(expected ACOL\\)"):
        import_reference(folder, tmp_path / "x.pt")
